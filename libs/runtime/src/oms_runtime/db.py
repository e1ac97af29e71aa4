"""PostgreSQL through SQLAlchemy async. Each service owns one schema of the database.

No `pool_pre_ping`: it cost three round trips (BEGIN, a ping, ROLLBACK) on every checkout, which
was a quarter of the database time of a message. A connection that the server dropped fails its
first statement instead; SQLAlchemy then discards it (and every pooled connection older than the
failure), and the caller's retry (the consumer's attempts, a use case's) runs on a fresh one.
"""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from oms_runtime.outbox import OutboxRow, write_pending
from oms_runtime.settings import ServiceSettings
from oms_runtime.upgrades import add_upgrades as add_upgrades  # where the services import it from
from oms_runtime.upgrades import upgrades_of

OutboxListener = Callable[[Sequence[OutboxRow]], None]


def schema_name(service: str) -> str:
    """`order-service` -> `order_service`."""
    return service.replace("-", "_")


class Database:
    """Engine and sessions bound to the service's schema (by search_path, so table names stay plain)."""

    def __init__(
        self,
        url: str,
        schema: str,
        pool_size: int = 10,
        connect_timeout_s: float = 5.0,
        pool_timeout_s: float = 10.0,
        max_overflow: int = 0,
    ) -> None:
        self.schema = schema
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            # No overflow by default: SQLAlchemy closes an overflow connection as soon as it is returned, so
            # a burst above the pool (32 HTTP clients) opened and closed a connection per request, each a
            # new PostgreSQL backend and asyncpg's type introspection (509 connections in a 1,500-order
            # bench); callers above the pool now wait for a free connection (pool_timeout) instead.
            max_overflow=max_overflow,
            pool_pre_ping=False,
            # Bounded waits while the database is down or every connection is busy (asyncpg would wait
            # 60 s for a connection, SQLAlchemy's pool 30 s for a free one): a caller fails fast and says
            # so (an API 503, a consumer's retry) instead of hanging.
            pool_timeout=pool_timeout_s,
            # A failed statement's parameters (payment tokens, personal data) never reach a log line.
            hide_parameters=True,
            connect_args={
                "server_settings": {"search_path": schema, "application_name": schema},
                "timeout": connect_timeout_s,
            },
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._outbox_listener: OutboxListener | None = None

    def set_outbox_listener(self, listener: OutboxListener | None) -> None:
        """Who gets the outbox rows of each transaction once it committed (the relay), or no one."""
        self._outbox_listener = listener

    @classmethod
    def for_service(cls, settings: ServiceSettings, service: str) -> "Database":
        return cls(
            settings.database_url,
            schema_name(service),
            settings.db_pool_size,
            settings.db_connect_timeout_s,
            settings.db_pool_timeout_s,
            settings.db_pool_overflow,
        )

    async def create_schema(self, *metadatas: MetaData) -> None:
        """Creates the schema and tables that do not exist yet, then runs the metadatas' upgrades
        (`add_upgrades`); safe to run on every start."""
        async with self.engine.begin() as conn:
            # Several replicas may start at once: serialise DDL on a lock named after the schema.
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": self.schema})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            for metadata in metadatas:
                await conn.run_sync(metadata.create_all)
                for statement in upgrades_of(metadata):
                    await conn.execute(text(statement))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction; the outbox rows queued on it are written just before it commits and
        handed to the outbox listener just after."""
        async with self.sessions() as session:
            async with session.begin():
                yield session
                committed = await write_pending(session)
            if committed and self._outbox_listener is not None:
                self._outbox_listener(committed)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
