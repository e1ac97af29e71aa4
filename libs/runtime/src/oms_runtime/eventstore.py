"""Event store on PostgreSQL: one row per event, streams versioned with optimistic concurrency."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

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
_APPEND_STREAMS = """
INSERT INTO events (stream_id, stream_type, version, event_id, event_type, envelope)
SELECT e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, e.envelope::jsonb
FROM unnest($1::text[], $2::text[], $3::int[], $4::uuid[], $5::text[], $6::text[])
    AS e(stream_id, stream_type, version, event_id, event_type, envelope)
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


@dataclass
class PendingAppends:
    """Appends to several streams held back to be written by one statement (`EventStore.append_pending`).

    A batch whose handlers decide on streams they keep in memory writes all its events at its end, so
    that appending costs a statement per batch instead of one per message. The streams' versions are
    still checked then: a stream someone else appended to first fails the whole statement."""

    stream_ids: list[str] = field(default_factory=list)
    stream_types: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    event_ids: list[UUID] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(
        self,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        envelopes: Sequence[Envelope],
        values: Sequence[bytes],
    ) -> int:
        """Queues the envelopes after `expected_version`; returns the new version."""
        for version, (envelope, value) in enumerate(zip(envelopes, values, strict=True), start=expected_version + 1):
            self.stream_ids.append(stream_id)
            self.stream_types.append(stream_type)
            self.versions.append(version)
            self.event_ids.append(envelope.event_id)
            self.event_types.append(envelope.type)
            self.values.append(value.decode())
        return expected_version + len(envelopes)

    def __len__(self) -> int:
        return len(self.stream_ids)


class EventStore:
    """Append and read streams inside the caller's transaction."""

    async def append_pending(self, session: AsyncSession, pending: PendingAppends) -> None:
        """Writes the queued appends in one statement and empties the queue."""
        if not pending:
            return
        try:
            await fetch_in_transaction(
                session,
                _APPEND_STREAMS,
                pending.stream_ids,
                pending.stream_types,
                pending.versions,
                pending.event_ids,
                pending.event_types,
                pending.values,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "uq_events_stream_version":
                raise ConcurrencyError(", ".join(sorted(set(pending.stream_ids))), min(pending.versions) - 1) from exc
            raise
        for column in vars(pending).values():
            column.clear()

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
