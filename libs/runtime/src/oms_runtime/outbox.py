"""Transactional outbox: outgoing messages are rows written in the same transaction as the state change.

A handler's `emit`/`record` queues rows on its session (`Outbox.add`); `Database.transaction` writes
them all in one multi-row INSERT just before the commit, so a transaction costs one outbox statement
however many messages it sends, and nothing is written for a transaction that rolls back. After the
commit the rows (with their ids) go to the service's relay (`oms_runtime.relay`), which publishes
them at once from memory; rows a crashed process never published are found by the relay's sweep.
"""

import json
from dataclasses import dataclass
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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope, cloudevents
from oms_runtime.driver import fetch_in_transaction
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

# One statement whatever the number of rows (unnest), so asyncpg prepares it once per connection. The
# ids follow the rows' order (ORDER BY the array position): the relay publishes in id order, which keeps
# the messages of one key in the order they were emitted.
_WRITE = """
INSERT INTO outbox (topic, message_key, event_id, event_type, value, headers)
SELECT r.topic, r.message_key, r.event_id, r.event_type, r.value, r.headers::jsonb
FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::bytea[], $6::text[]) WITH ORDINALITY
    AS r(topic, message_key, event_id, event_type, value, headers, position)
ORDER BY r.position
RETURNING id, event_id
"""


def kafka_headers(envelope: Envelope) -> dict[str, str]:
    """Headers let tools route and trace without parsing the value.

    Two sets: the OMS's own (`type`, `schema_version`, `event_id`, `correlation_id`, `traceparent`: what
    consumers, the dead-letter tools and other teams read today) and the CloudEvents Kafka protocol
    binding's, binary mode (`ce_<attribute>` for every attribute of `oms_events.cloudevents.attributes`,
    `content-type` for `datacontenttype`), so that off-the-shelf CloudEvents tooling reads every record; the
    value stays the envelope's JSON, which is the event's data in binary mode."""
    headers = {
        "type": envelope.type,
        "schema_version": str(envelope.schema_version),
        "event_id": str(envelope.event_id),
        "correlation_id": envelope.correlation_id,
    }
    if envelope.trace_context.traceparent:
        headers["traceparent"] = envelope.trace_context.traceparent
    for name, value in cloudevents.attributes(envelope).items():
        if name == "datacontenttype":
            headers["content-type"] = value
        else:
            headers[f"ce_{name}"] = value
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
    async def add(
        self, session: AsyncSession, topic: str, key: str, envelope: Envelope, value: bytes | None = None
    ) -> None:
        """Queues a message on the session's transaction; it is written just before the commit.

        `value` is the envelope's bytes when the caller has them already (an event also appended to
        the event store): an envelope is serialised once."""
        pending_rows(session).append(
            OutboxRow(
                topic=topic,
                key=key,
                event_id=envelope.event_id,
                event_type=envelope.type,
                value=envelope.to_bytes() if value is None else value,
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
    written = await fetch_in_transaction(
        session,
        _WRITE,
        [r.topic for r in rows],
        [r.key for r in rows],
        [r.event_id for r in rows],
        [r.event_type for r in rows],
        [r.value for r in rows],
        [json.dumps(r.headers) for r in rows],
    )
    # Matched by event id (unique), not by the order RETURNING happens to give.
    ids = {event_id: row_id for row_id, event_id in written}
    for row in rows:
        row.id = ids[row.event_id]
    return rows
