"""Transactional outbox: outgoing messages are rows written in the same transaction as the state change.

A handler's `emit`/`record` queues rows on its session (`Outbox.add`); `Database.transaction` writes
them all in one multi-row INSERT just before the commit, so a transaction costs one outbox statement
however many messages it sends, and nothing is written for a transaction that rolls back. After the
commit the rows (with their ids) go to the service's relay (`oms_runtime.relay`), which publishes
them at once from memory; rows a crashed process never published are found by the relay's sweep.
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    String,
    Table,
    Uuid,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope
from oms_runtime.eventstore import runtime_metadata
from oms_runtime.upgrades import add_upgrades

outbox_table = Table(
    "outbox",
    runtime_metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("topic", String(200), nullable=False),
    Column("message_key", String(200), nullable=False),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    # For pruning published rows by age (oms_runtime.retention); rows come in time order: BRIN.
    Index("ix_outbox_created_at", "created_at", postgresql_using="brin"),
)
add_upgrades(runtime_metadata, ["CREATE INDEX IF NOT EXISTS ix_outbox_created_at ON outbox USING brin (created_at)"])

_PENDING = "oms.outbox.pending"


def kafka_headers(envelope: Envelope) -> dict[str, str]:
    """Headers let tools route and trace without parsing the value."""
    headers = {
        "type": envelope.type,
        "schema_version": str(envelope.schema_version),
        "event_id": str(envelope.event_id),
        "correlation_id": envelope.correlation_id,
    }
    if envelope.trace_context.traceparent:
        headers["traceparent"] = envelope.trace_context.traceparent
    return headers


@dataclass(slots=True)
class OutboxRow:
    """One outgoing record; `id` is set when the row is written."""

    topic: str
    key: str
    event_id: UUID
    event_type: str
    value: bytes
    headers: dict[str, str]
    id: int = 0

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.headers.items()]


class Outbox:
    async def add(self, session: AsyncSession, topic: str, key: str, envelope: Envelope) -> None:
        """Queues a message on the session's transaction; it is written just before the commit."""
        pending_rows(session).append(
            OutboxRow(
                topic=topic,
                key=key,
                event_id=envelope.event_id,
                event_type=envelope.type,
                value=envelope.to_bytes(),
                headers=kafka_headers(envelope),
            )
        )


def pending_rows(session: AsyncSession) -> list[OutboxRow]:
    rows: list[OutboxRow] = session.info.setdefault(_PENDING, [])
    return rows


async def write_pending(session: AsyncSession) -> list[OutboxRow]:
    """Writes the rows queued on the session in one statement and returns them with their ids."""
    rows: list[OutboxRow] = session.info.pop(_PENDING, [])
    if not rows:
        return rows
    params: list[dict[str, Any]] = [
        {
            "topic": r.topic,
            "message_key": r.key,
            "event_id": r.event_id,
            "event_type": r.event_type,
            "value": r.value,
            "headers": r.headers,
        }
        for r in rows
    ]
    result = await session.execute(
        insert(outbox_table).returning(outbox_table.c.id, sort_by_parameter_order=True), params
    )
    for row, row_id in zip(rows, result.scalars(), strict=True):
        row.id = row_id
    return rows
