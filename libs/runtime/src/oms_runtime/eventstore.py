"""Event store on PostgreSQL: one row per event, streams versioned with optimistic concurrency."""

from collections.abc import Sequence
from dataclasses import dataclass

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
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope

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
    ) -> int:
        """Appends after `expected_version` (0 for a new stream); returns the new version."""
        if not envelopes:
            return expected_version
        rows = [
            {
                "stream_id": stream_id,
                "stream_type": stream_type,
                "version": expected_version + i,
                "event_id": e.event_id,
                "event_type": e.type,
                "envelope": e.model_dump(mode="json"),
            }
            for i, e in enumerate(envelopes, start=1)
        ]
        try:
            # No savepoint (two more round trips per append): a lost race aborts the caller's whole
            # transaction, and every caller decides again in a new one (the consumer's fallback and
            # attempts, UseCaseRunner).
            await session.execute(insert(events_table), rows)
        except IntegrityError as exc:
            if "uq_events_stream_version" in str(exc.orig):
                raise ConcurrencyError(stream_id, expected_version) from exc
            raise
        return expected_version + len(envelopes)

    async def current_version(self, session: AsyncSession, stream_id: str) -> int:
        version = await session.scalar(
            select(func.max(events_table.c.version)).where(events_table.c.stream_id == stream_id)
        )
        return int(version or 0)

    async def load(self, session: AsyncSession, stream_id: str) -> list[StoredEvent]:
        result = await session.execute(
            select(events_table.c.position, events_table.c.version, events_table.c.envelope)
            .where(events_table.c.stream_id == stream_id)
            .order_by(events_table.c.version)
        )
        return [
            StoredEvent(position, stream_id, version, Envelope.model_validate(envelope))
            for position, version, envelope in result.all()
        ]

    async def read_all(self, session: AsyncSession, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Every stream in recording order, for rebuilding projections."""
        result = await session.execute(
            select(
                events_table.c.position,
                events_table.c.stream_id,
                events_table.c.version,
                events_table.c.envelope,
            )
            .where(events_table.c.position > after_position)
            .order_by(events_table.c.position)
            .limit(limit)
        )
        return [
            StoredEvent(position, stream_id, version, Envelope.model_validate(envelope))
            for position, stream_id, version, envelope in result.all()
        ]
