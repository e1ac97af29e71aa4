"""Transactional outbox and its relay.

A handler writes its outgoing messages into the outbox table in the same transaction as its state
change. The relay reads committed rows in id order and publishes them with the idempotent
producer, then marks them published. A crash between publishing and marking republishes a few
messages; every consumer's inbox absorbs those duplicates.
"""

import asyncio
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
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
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope
from oms_runtime import metrics
from oms_runtime.db import Database
from oms_runtime.eventstore import runtime_metadata
from oms_runtime.periodic import PeriodicTask

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
)


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


class Outbox:
    async def add(self, session: AsyncSession, topic: str, key: str, envelope: Envelope) -> None:
        await session.execute(
            insert(outbox_table).values(
                topic=topic,
                message_key=key,
                event_id=envelope.event_id,
                event_type=envelope.type,
                value=envelope.to_bytes(),
                headers=kafka_headers(envelope),
            )
        )


class OutboxRelay:
    """Publishes committed outbox rows in commit order; one relay per service works at a time."""

    # Arbitrary constant for the advisory lock; combined with the schema via the search_path's DB.
    _LOCK_KEY = 0x0B0C5

    def __init__(
        self,
        db: Database,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.25,
        keep_published: timedelta = timedelta(hours=24),
        linger_s: float = 0.005,
    ) -> None:
        self._db = db
        self._producer = producer
        self._batch_size = batch_size
        self._keep_published = keep_published
        self._rounds = 0
        self._loop = PeriodicTask(
            "outbox-relay",
            self._round,
            interval_s=poll_interval_s,
            again_while_busy=True,
            # Let commits that land together go out in one batch rather than one round each.
            settle_s=linger_s,
            failure_pause_s=1.0,
        )
        self.published_total = 0

    def notify(self) -> None:
        """Something was committed to the outbox: publish it now rather than at the next poll."""
        self._loop.wake()

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        """Publishes what is already committed, then stops."""
        await self._loop.stop(drain=True)

    async def _round(self) -> int:
        published = await self.publish_batch()
        self._rounds += 1
        if self._rounds % 1000 == 0:
            await self._purge_published()
        return published

    async def publish_batch(self) -> int:
        """Publishes up to one batch; returns how many rows it published."""
        async with self._db.transaction() as session:
            locked = await session.scalar(
                select(func.pg_try_advisory_xact_lock(self._LOCK_KEY, func.hashtext(self._db.schema)))
            )
            if not locked:
                return 0
            rows = (
                await session.execute(
                    select(
                        outbox_table.c.id,
                        outbox_table.c.topic,
                        outbox_table.c.message_key,
                        outbox_table.c.value,
                        outbox_table.c.headers,
                    )
                    .where(outbox_table.c.published_at.is_(None))
                    .order_by(outbox_table.c.id)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            deliveries = []
            for row in rows:
                headers = [(k, v.encode()) for k, v in row.headers.items()]
                deliveries.append(
                    await self._producer.send(row.topic, value=row.value, key=row.message_key.encode(), headers=headers)
                )
            await asyncio.gather(*deliveries)
            for row in rows:
                metrics.MESSAGES_PRODUCED.labels(topic=row.topic, type=row.headers.get("type", "unknown")).inc()
            await session.execute(
                update(outbox_table).where(outbox_table.c.id.in_([r.id for r in rows])).values(published_at=func.now())
            )
        self.published_total += len(rows)
        return len(rows)

    async def _purge_published(self) -> None:
        cutoff = datetime.now(UTC) - self._keep_published
        async with self._db.transaction() as session:
            await session.execute(delete(outbox_table).where(outbox_table.c.published_at < cutoff))

    async def oldest_unpublished_age_s(self) -> float:
        return (await self.backlog())[0]

    async def backlog(self) -> tuple[float, int]:
        """Age in seconds of the oldest unpublished row (0 when none), and how many rows wait."""
        async with self._db.transaction() as session:
            row = (
                await session.execute(
                    select(func.min(outbox_table.c.created_at), func.count()).where(
                        outbox_table.c.published_at.is_(None)
                    )
                )
            ).one()
        oldest, pending = row
        age = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        return age, int(pending)
