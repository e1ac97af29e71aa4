"""Inbox: the ids of messages a consumer has processed, written in the same transaction as their effects."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Column, DateTime, Index, PrimaryKeyConstraint, String, Table, Uuid, func
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope
from oms_runtime.driver import fetch_in_transaction
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

# One statement whatever the batch's size (unnest), so asyncpg prepares it once per connection.
_RECORD = """
INSERT INTO inbox (consumer, message_id, message_type)
SELECT $1::text, m.message_id, m.message_type FROM unnest($2::uuid[], $3::text[]) AS m(message_id, message_type)
ON CONFLICT ON CONSTRAINT pk_inbox DO NOTHING
RETURNING message_id
"""


_SEEN = "SELECT 1 FROM inbox WHERE consumer = $1 AND message_id = $2"


class Inbox:
    async def record(self, session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
        """True the first time; False when this consumer already processed the message."""
        return envelope.event_id in await self.record_many(session, consumer, [envelope])

    async def record_many(self, session: AsyncSession, consumer: str, envelopes: Sequence[Envelope]) -> set[UUID]:
        """Records a batch in one statement; returns the ids this consumer had not processed before.

        An id twice in the batch is returned once: the caller handles its first occurrence only."""
        if not envelopes:
            return set()
        rows = await fetch_in_transaction(
            session, _RECORD, consumer, [e.event_id for e in envelopes], [e.type for e in envelopes]
        )
        # asyncpg's UUID equals and hashes like the standard library's.
        return {row[0] for row in rows}

    async def record_ids(
        self, session: AsyncSession, consumer: str, ids: Sequence[UUID], message_type: str
    ) -> set[UUID]:
        """Records ids that stand for something other than a message (e.g. a dead-lettered record's place)."""
        rows = await fetch_in_transaction(session, _RECORD, consumer, list(ids), [message_type] * len(ids))
        return {row[0] for row in rows}

    async def seen(self, session: AsyncSession, consumer: str, message_id: UUID) -> bool:
        rows = await fetch_in_transaction(session, _SEEN, consumer, message_id)
        return bool(rows)
