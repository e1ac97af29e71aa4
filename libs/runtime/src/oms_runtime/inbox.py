"""Inbox: the ids of messages a consumer has processed, written in the same transaction as their effects."""

from sqlalchemy import Column, DateTime, PrimaryKeyConstraint, String, Table, Uuid, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope
from oms_runtime.eventstore import runtime_metadata

inbox_table = Table(
    "inbox",
    runtime_metadata,
    Column("consumer", String(100), nullable=False),
    Column("message_id", Uuid, nullable=False),
    Column("message_type", String(200), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "message_id", name="pk_inbox"),
)


class Inbox:
    async def record(self, session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
        """True the first time; False when this consumer already processed the message."""
        result = await session.execute(
            insert(inbox_table)
            .values(consumer=consumer, message_id=envelope.event_id, message_type=envelope.type)
            .on_conflict_do_nothing(constraint="pk_inbox")
            .returning(inbox_table.c.message_id)
        )
        return result.first() is not None
