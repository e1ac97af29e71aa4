"""Event store on PostgreSQL: one row per event, streams versioned with optimistic concurrency."""

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope
from oms_runtime.driver import fetch_in_transaction

runtime_metadata = MetaData()

events_table = Table(
    "events",
    runtime_metadata,
    Column("position", BigInteger, Identity(always=True), primary_key=True),
    Column("stream_id", String(200), nullable=False),
    Column("stream_type", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
)


# Statements built once: building one costs more Python than sending it.
_APPEND = """
INSERT INTO events (stream_id, stream_type, version, event_id, event_type, envelope)
SELECT $1::text, $2::text, e.version, e.event_id, e.event_type, e.envelope::jsonb
FROM unnest($3::int[], $4::uuid[], $5::text[], $6::text[]) AS e(version, event_id, event_type, envelope)
"""
_CURRENT_VERSION = select(func.max(events_table.c.version)).where(events_table.c.stream_id == bindparam("stream_id"))
_LOAD = (
    select(events_table.c.position, events_table.c.version, events_table.c.envelope)
    .where(events_table.c.stream_id == bindparam("stream_id"))
    .order_by(events_table.c.version)
)
_READ_ALL = (
    select(events_table.c.position, events_table.c.stream_id, events_table.c.version, events_table.c.envelope)
    .where(events_table.c.position > bindparam("after"))
    .order_by(events_table.c.position)
    .limit(bindparam("limit"))
)


class ConcurrencyError(Exception):
    """Someone else appended to the stream first; reload and decide again."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} is past version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True)
class StoredEvent:
    position: int
    stream_id: str
    version: int
    envelope: Envelope


class EventStore:
    """Append and read streams inside the caller's transaction."""

    async def append(
        self,
        session: AsyncSession,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        envelopes: Sequence[Envelope],
        values: Sequence[bytes] | None = None,
    ) -> int:
        """Appends after `expected_version` (0 for a new stream); returns the new version.

        `values` are the envelopes' bytes when the caller has them (the outbox takes the same)."""
        if not envelopes:
            return expected_version
        serialised = [e.to_bytes() for e in envelopes] if values is None else values
        try:
            # No savepoint (two more round trips per append): a lost race aborts the caller's whole
            # transaction, and every caller decides again in a new one (the consumer's fallback and
            # attempts, UseCaseRunner).
            await fetch_in_transaction(
                session,
                _APPEND,
                stream_id,
                stream_type,
                list(range(expected_version + 1, expected_version + len(envelopes) + 1)),
                [e.event_id for e in envelopes],
                [e.type for e in envelopes],
                [v.decode() for v in serialised],
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "uq_events_stream_version":
                raise ConcurrencyError(stream_id, expected_version) from exc
            raise
        return expected_version + len(envelopes)

    async def current_version(self, session: AsyncSession, stream_id: str) -> int:
        version = await session.scalar(_CURRENT_VERSION, {"stream_id": stream_id})
        return int(version or 0)

    async def load(self, session: AsyncSession, stream_id: str) -> list[StoredEvent]:
        result = await session.execute(_LOAD, {"stream_id": stream_id})
        return [
            StoredEvent(position, stream_id, version, Envelope.model_validate(envelope))
            for position, version, envelope in result.all()
        ]

    async def read_all(self, session: AsyncSession, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Every stream in recording order, for rebuilding projections."""
        result = await session.execute(_READ_ALL, {"after": after_position, "limit": limit})
        return [
            StoredEvent(position, stream_id, version, Envelope.model_validate(envelope))
            for position, stream_id, version, envelope in result.all()
        ]
