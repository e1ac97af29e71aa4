"""Inbox: the ids of messages a consumer has processed, written in the same transaction as their effects."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Column, DateTime, Index, PrimaryKeyConstraint, String, Table, Uuid, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope
from oms_runtime.eventstore import runtime_metadata
from oms_runtime.upgrades import add_upgrades

inbox_table = Table(
    "inbox",
    runtime_metadata,
    Column("consumer", String(100), nullable=False),
    Column("message_id", Uuid, nullable=False),
    Column("message_type", String(200), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "message_id", name="pk_inbox"),
    # For pruning by age (oms_runtime.retention): rows come in time order, so BRIN costs next to nothing.
    Index("ix_inbox_processed_at", "processed_at", postgresql_using="brin"),
)
add_upgrades(runtime_metadata, ["CREATE INDEX IF NOT EXISTS ix_inbox_processed_at ON inbox USING brin (processed_at)"])

_RECORD = insert(inbox_table).on_conflict_do_nothing(constraint="pk_inbox").returning(inbox_table.c.message_id)


class Inbox:
    async def record(self, session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
        """True the first time; False when this consumer already processed the message."""
        return envelope.event_id in await self.record_many(session, consumer, [envelope])

    async def record_many(self, session: AsyncSession, consumer: str, envelopes: Sequence[Envelope]) -> set[UUID]:
        """Records a batch in one statement; returns the ids this consumer had not processed before.

        An id twice in the batch is returned once: the caller handles its first occurrence only."""
        if not envelopes:
            return set()
        result = await session.execute(
            _RECORD,
            [{"consumer": consumer, "message_id": e.event_id, "message_type": e.type} for e in envelopes],
        )
        return set(result.scalars())
