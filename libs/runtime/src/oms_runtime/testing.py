"""Test support shared by every service's tests: a throwaway schema on the real PostgreSQL, a
dead-letter stand-in that records, and a harness that drives handlers through the real processor
(inbox, transaction, outbox) without Kafka."""

import itertools
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Self
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy import MetaData, event, func, select, text

from oms_events import ContractMessage, Message, MessageRegistry, default_registry
from oms_runtime.db import Database
from oms_runtime.driver import listen_to_driver_statements
from oms_runtime.eventstore import events_table, runtime_metadata
from oms_runtime.messaging import DeadLetterPublisher, HandlerMap, MessageProcessor, Outcome, SourceRecord
from oms_runtime.outbox import outbox_table

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now: a test's server does not meet a running service."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_OFFSETS = itertools.count(1)
"""One sequence for every harness in the process: two records never share a place (topic, partition,
offset), as on a real topic, even when tests share a schema; the processor dead-letters a place once."""


@asynccontextmanager
async def throwaway_schema(prefix: str, *metadata: MetaData, pool_size: int = 4) -> AsyncIterator[Database]:
    """A schema of its own with the runtime's and the given tables, dropped afterwards."""
    database = Database(DATABASE_URL, schema=f"{prefix}_{os.urandom(6).hex()}", pool_size=pool_size)
    await database.create_schema(runtime_metadata, *metadata)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{database.schema}" CASCADE'))
        await database.dispose()


def stderr_logger() -> Any:
    """A logger that prints to the current stderr, for a test to put in place of a module's `log`.

    A module's cached logger may still be bound to a stream an earlier test captured and closed (every
    log call would then fail), whatever that test did to structlog's global configuration; this one
    looks sys.stderr up now, so it writes into the running test's capture."""
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)],
    )


class RecordingDeadLetters(DeadLetterPublisher):
    """Keeps what would have gone to the dead-letter topic."""

    def __init__(self, consumer: str = "test") -> None:
        super().__init__(producer=None, topic=f"{consumer}.dlq", consumer=consumer)
        self.sent: list[tuple[SourceRecord, str]] = []

    async def send(self, record: SourceRecord, reason: str) -> None:
        self.sent.append((record, reason))


class HandlerHarness:
    """Feeds messages to handlers through a real MessageProcessor and reads what they emitted."""

    def __init__(
        self, db: Database, consumer: str, handlers: HandlerMap, registry: MessageRegistry | None = None
    ) -> None:
        self.db = db
        self.registry = registry or default_registry()
        self.dead_letters = RecordingDeadLetters(consumer)
        self.processor = MessageProcessor(
            consumer=consumer,
            producer_name=consumer,
            db=db,
            registry=self.registry,
            handlers=handlers,
            dead_letters=self.dead_letters,
            max_attempts=3,
            retry_backoff_s=0.01,
        )

    async def send(self, message: ContractMessage, raw: bytes | None = None) -> Outcome:
        value = raw if raw is not None else self.registry.wrap(message, producer="test").to_bytes()
        record = SourceRecord(message.topic, 0, next(_OFFSETS), message.key.encode(), value)
        return await self.processor.process(record)

    async def emitted(self, order_id: UUID) -> list[Message]:
        async with self.db.transaction() as session:
            values = await session.scalars(
                select(outbox_table.c.value)
                .where(outbox_table.c.message_key == str(order_id))
                .order_by(outbox_table.c.id)
            )
            return [self.registry.parse(v)[1] for v in values]

    async def emitted_for_key(self, key: str) -> list[ContractMessage]:
        """Everything queued under one Kafka key (an order id, a sku, ...), in outbox order."""
        async with self.db.transaction() as session:
            values = await session.scalars(
                select(outbox_table.c.value).where(outbox_table.c.message_key == key).order_by(outbox_table.c.id)
            )
            return [self.registry.parse_any(v)[1] for v in values]

    async def stream_length(self, stream_id: str) -> int:
        async with self.db.transaction() as session:
            count = await session.scalar(
                select(func.count()).select_from(events_table).where(events_table.c.stream_id == stream_id)
            )
        return int(count or 0)


class StatementCounter:
    """The statements a database gets in a `counting()` block, a service's apart from the runtime's (inbox,
    outbox), and the transactions asyncpg opens (a BEGIN round trip each; none in autocommit).

    A statement costs a round trip, which made statements most of a service's CPU per message: the services'
    statement-count tests pin their budgets with it. It sees SQLAlchemy's statements (`before_cursor_execute`)
    and the ones the runtime sends straight to asyncpg (`oms_runtime.driver`); `tables` is the pattern of
    the service's table names, for `tables()`.
    """

    RUNTIME_TABLES = re.compile(r"\b(inbox|outbox)\b")

    def __init__(self, db: Database, tables: re.Pattern[str]) -> None:
        self._engine = db.engine.sync_engine
        self._tables = tables
        self.ours: list[str] = []
        self.runtime: list[str] = []
        self.driven: list[str] = []
        self.transactions = 0

    def _seen(self, statement: str) -> None:
        (self.runtime if self.RUNTIME_TABLES.search(statement) else self.ours).append(statement)

    def _driven(self, statement: str) -> None:
        self.driven.append(statement)
        self._seen(statement)

    def _cursor(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._seen(statement)

    @contextmanager
    def counting(self) -> Iterator[Self]:
        self.ours, self.runtime, self.driven, self.transactions = [], [], [], 0
        transaction = asyncpg.Connection.transaction

        def counted(connection: Any, **options: Any) -> Any:
            self.transactions += 1
            return transaction(connection, **options)

        event.listen(self._engine, "before_cursor_execute", self._cursor)
        stop_driver = listen_to_driver_statements(self._driven)
        asyncpg.Connection.transaction = counted
        try:
            yield self
        finally:
            asyncpg.Connection.transaction = transaction
            stop_driver()
            event.remove(self._engine, "before_cursor_execute", self._cursor)

    def tables(self) -> list[set[str]]:
        """The service's tables each of its statements touches, in order."""
        return [set(self._tables.findall(statement)) for statement in self.ours]

    def through_sqlalchemy(self) -> list[str]:
        """The service's statements that went through SQLAlchemy instead of straight to asyncpg
        (`oms_runtime.driver.fetch_in_transaction`, about 0.1 ms of Python against 0.5 ms)."""
        return [statement for statement in self.ours if statement not in self.driven]

    def counts(self) -> tuple[int, int, int]:
        """(the service's statements, the runtime's, transactions)."""
        return len(self.ours), len(self.runtime), self.transactions
