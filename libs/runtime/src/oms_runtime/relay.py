"""The outbox relay: publishes committed outbox rows to Kafka with the idempotent producer.

Two paths, one table:
- At commit. `Database.transaction` hands the rows it just committed to `committed`; the relay's
  sender publishes them from memory at once, in commit order (per process), and marks what it
  published in one UPDATE every `mark_pause_s` (0.2 s), not one transaction per publish. No polling, no read of the table: at the system's pace a
  poll round that found one row cost 13 ms of Python, the direct path a small share of that.
- The sweep. A row that was committed but never published (the process died before the broker's
  ack) stays unpublished in the table. Every `sweep_interval_s` (5 s: it only serves replicas that
  died, and each sweep is a transaction even when it finds nothing) one
  relay per service (an advisory lock) publishes the rows older than `sweep_after_s` that no
  relay in this process holds, oldest first (`oms_runtime.retention` prunes published rows).

A crash between the broker's ack and the UPDATE republishes a few rows at the next sweep; every
consumer's inbox absorbs those duplicates.

Order: the sender publishes rows in the order their transactions committed in this process, so
the messages of one stream (one order) keep their order. A publish that fails is retried before
anything committed after it (past `max_queued` rows waiting, memory lets go and the table takes
over). At start, and after letting go, the sender first catches up: it publishes the table's
unpublished rows up to the newest, in id order, and only then what was committed since. Across
replicas, two commits about one order from two processes are each published right after their own
commit: a window of milliseconds, which the consumers' saga state and inbox already absorb (a
re-sent command, a late reply).
"""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from oms_runtime import metrics
from oms_runtime.db import Database
from oms_runtime.driver import fetch_in_transaction
from oms_runtime.logging import get_logger
from oms_runtime.outbox import OutboxRow, outbox_table
from oms_runtime.periodic import PeriodicTask

log = get_logger(__name__)

# Straight to asyncpg, one text whatever the count (an expanding IN would be a new statement per count).
_MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"


class OutboxRelay:
    """Publishes what this process commits as it commits it, and sweeps up what was left behind."""

    # Arbitrary constant for the sweep's advisory lock; combined with the schema's hash.
    _LOCK_KEY = 0x0B0C5

    def __init__(
        self,
        db: Database,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        sweep_interval_s: float = 5.0,
        sweep_after_s: float = 10.0,
        max_queued: int = 50_000,
        mark_pause_s: float = 0.2,
    ) -> None:
        self._db = db
        self._producer = producer
        self._batch_size = batch_size
        self._sweep_after_s = sweep_after_s
        self._queue: list[OutboxRow] = []
        # Rows this process has taken on and not yet marked published: the sweep leaves them alone.
        self._held: set[int] = set()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._stopping = False
        self._catching_up = True
        self._retry_pause_s = 1.0
        self._mark_pause_s = mark_pause_s
        # Published, not yet marked in the table (still held: the sweep leaves them alone).
        self._unmarked: list[int] = []
        self._marker: asyncio.Task[None] | None = None
        # Past this many rows waiting for the broker, memory lets go and the table takes over.
        self._max_queued = max_queued
        self._sweep_interval_s = sweep_interval_s
        self._sweeper = PeriodicTask(
            "outbox-sweep", self._sweep_round, interval_s=sweep_interval_s, again_while_busy=True, failure_pause_s=1.0
        )
        self.published_total = 0

    def committed(self, rows: Sequence[OutboxRow]) -> None:
        """Rows of a transaction that just committed: publish them now (after any catch-up)."""
        self._queue.extend(rows)
        self._held.update(r.id for r in rows)
        self._wake.set()

    async def start(self) -> None:
        # Rows a previous process left behind go out before anything this one commits.
        self._catching_up = True
        self._db.set_outbox_listener(self.committed)
        self._stopping = False
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_loop(), name="outbox-sender")
        self._wake.set()
        await self._sweeper.start()

    async def stop(self) -> None:
        """Publishes what this process committed (while the broker answers), then stops.

        The consumers and the API have stopped before this, so nothing more is committed; what the
        broker did not take stays in the table for the next start or another replica's sweep."""
        self._stopping = True
        self._wake.set()
        if self._sender is not None:
            await self._sender
            self._sender = None
        if self._marker is not None:
            await self._marker  # a pause of mark_pause_s at most, then its UPDATE
            self._marker = None
        await self._mark_unmarked()
        self._db.set_outbox_listener(None)
        await self._sweeper.stop()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._catching_up:
                    await self._catch_up()
                await self._flush_queue()
            except Exception as exc:
                log.warning("outbox publish failed; retrying", error=f"{type(exc).__name__}: {exc}")
                if len(self._queue) > self._max_queued:
                    self._fall_back_to_table()
                if self._stopping:
                    return
                await asyncio.sleep(self._retry_pause_s)
                self._wake.set()
            if self._stopping:
                return

    def _fall_back_to_table(self) -> None:
        """A long outage: forget the rows in memory (they are in the table) and catch up from there."""
        self._catching_up = True
        self._held.difference_update(r.id for r in self._queue)
        self._queue = []

    async def _catch_up(self) -> None:
        """Publishes the table's unpublished rows up to its newest one, oldest first, before the queue.

        Rows committed from now on are queued (and held, so skipped here): they follow in order."""
        async with self._db.transaction() as session:
            watermark = await session.scalar(
                select(func.max(outbox_table.c.id)).where(outbox_table.c.published_at.is_(None))
            )
        while watermark is not None:
            published = await self._publish_from_table(min_age_s=0.0, max_id=watermark)
            if published == 0:
                break
            if published is None:  # another relay of this service is sweeping: let it finish
                await asyncio.sleep(self._sweep_interval_s / 4)
        self._catching_up = False

    async def _flush_queue(self) -> None:
        while self._queue:
            batch = self._queue
            self._queue = []
            try:
                await self._publish(batch)
            except BaseException:
                self._queue = batch + self._queue  # retried first: nothing overtakes it
                raise
            self._unmarked.extend(r.id for r in batch)
            self._mark_soon()

    def _mark_soon(self) -> None:
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._mark_after_pause(), name="outbox-marker")

    async def _mark_after_pause(self) -> None:
        # One UPDATE for whatever was published in the pause, not one transaction per publish. The rows
        # stay held meanwhile; if the process dies first they are published again at the next start
        # (the consumers' inboxes drop the copies).
        await asyncio.sleep(self._mark_pause_s)
        await self._mark_unmarked()
        # Rows published while that UPDATE ran found this marker still running (`_mark_soon` made none):
        # one more round for them, or they would wait, held and counted as pending, for the next publish.
        while self._unmarked and not self._stopping:
            await asyncio.sleep(self._mark_pause_s)
            await self._mark_unmarked()

    async def _mark_unmarked(self) -> None:
        ids, self._unmarked = self._unmarked, []
        if not ids:
            return
        try:
            async with self._db.transaction() as session:
                await fetch_in_transaction(session, _MARK_PUBLISHED, ids)
        except Exception as exc:
            log.warning("outbox rows not marked published yet", rows=len(ids), error=f"{type(exc).__name__}: {exc}")
            self._unmarked = ids + self._unmarked
            if not self._stopping:
                await asyncio.sleep(self._retry_pause_s)
                self._mark_soon()
            return
        self._held.difference_update(ids)

    async def _publish(self, rows: Sequence[OutboxRow]) -> None:
        deliveries = [
            await self._producer.send(r.topic, value=r.value, key=r.key.encode(), headers=r.kafka_headers())
            for r in rows
        ]
        await asyncio.gather(*deliveries)
        for r in rows:
            metrics.MESSAGES_PRODUCED.labels(topic=r.topic, type=r.event_type).inc()
        self.published_total += len(rows)

    async def _sweep_round(self) -> int:
        if self._catching_up:
            return 0  # the sender is reading the table already
        published = await self._publish_from_table(min_age_s=self._sweep_after_s)
        if published:
            log.info("outbox rows left behind were published", rows=published)
        return published or 0

    async def publish_batch(self, min_age_s: float = 0.0) -> int:
        """Publishes up to one batch of unpublished rows older than `min_age_s` that this process does
        not hold; returns how many (0 also when another relay of the service is at it)."""
        return await self._publish_from_table(min_age_s) or 0

    async def _publish_from_table(self, min_age_s: float, max_id: int | None = None) -> int | None:
        """One batch from the table, oldest first, under the service's sweep lock; None if it is taken."""
        async with self._db.transaction() as session:
            locked = await session.scalar(
                select(func.pg_try_advisory_xact_lock(self._LOCK_KEY, func.hashtext(self._db.schema)))
            )
            if not locked:
                return None
            query = (
                select(
                    outbox_table.c.id,
                    outbox_table.c.topic,
                    outbox_table.c.message_key,
                    outbox_table.c.event_id,
                    outbox_table.c.event_type,
                    outbox_table.c.value,
                    outbox_table.c.headers,
                )
                .where(outbox_table.c.published_at.is_(None))
                .order_by(outbox_table.c.id)
                .limit(self._batch_size)
            )
            if min_age_s > 0:
                query = query.where(outbox_table.c.created_at < func.now() - timedelta(seconds=min_age_s))
            if max_id is not None:
                query = query.where(outbox_table.c.id <= max_id)
            rows = [
                OutboxRow(
                    topic=r.topic,
                    key=r.message_key,
                    event_id=r.event_id,
                    event_type=r.event_type,
                    value=r.value,
                    headers=r.headers,
                    id=r.id,
                )
                for r in (await session.execute(query)).all()
                if r.id not in self._held
            ]
            if not rows:
                return 0
            await self._publish(rows)
            await fetch_in_transaction(session, _MARK_PUBLISHED, [r.id for r in rows])
        return len(rows)

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
