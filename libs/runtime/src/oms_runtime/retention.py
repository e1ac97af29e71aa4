"""Retention of the runtime's bookkeeping: inbox and published outbox rows do not pile up forever.

Every message a consumer processes leaves an inbox row and every message a service sends an outbox
row: two rows per message, millions a day at a retailer's peak, and a table that only grows makes
every insert and the database's vacuum slower over time. They are only needed for a while:

- an inbox row deduplicates a redelivery of its message. Records live on their topic for the topic's
  retention (7 days); an inbox row older than that plus a margin (`inbox_retention`, 8 days by
  default) has no record left that could come back;
- a published outbox row is history (`outbox_retention`, 24 hours, for an operator who looks into
  what was sent); an unpublished one is never pruned, whatever its age.

Rows go in chunks of `chunk` per statement, each in a transaction of its own, so pruning never holds
many locks or one long transaction beside the consumers. Replicas may prune at the same time: a row
deleted twice is deleted once. The rows are found by BRIN indexes on their times: both tables are
written in time order, so a BRIN index costs next to nothing per insert, unlike a B-tree.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Executable, bindparam, delete, select, tuple_

from oms_runtime.db import Database
from oms_runtime.inbox import inbox_table
from oms_runtime.logging import get_logger
from oms_runtime.outbox import outbox_table
from oms_runtime.periodic import PeriodicTask

log = get_logger(__name__)

_OLD_INBOX = (
    delete(inbox_table)
    .where(
        tuple_(inbox_table.c.consumer, inbox_table.c.message_id).in_(
            select(inbox_table.c.consumer, inbox_table.c.message_id)
            .where(inbox_table.c.processed_at < bindparam("cutoff"))
            .limit(bindparam("chunk"))
        )
    )
    .returning(inbox_table.c.message_id)
)
# Published rows only: an unpublished row waits for the relay, however old it is.
_OLD_OUTBOX = (
    delete(outbox_table)
    .where(
        outbox_table.c.id.in_(
            select(outbox_table.c.id)
            .where(outbox_table.c.created_at < bindparam("cutoff"), outbox_table.c.published_at.is_not(None))
            .limit(bindparam("chunk"))
        )
    )
    .returning(outbox_table.c.id)
)


@dataclass(frozen=True)
class Pruned:
    inbox: int
    outbox: int


class RetentionPruner:
    """Deletes inbox rows past `inbox_retention` and published outbox rows past `outbox_retention`."""

    def __init__(
        self,
        db: Database,
        *,
        inbox_retention: timedelta = timedelta(days=8),
        outbox_retention: timedelta = timedelta(hours=24),
        interval_s: float = 600.0,
        chunk: int = 5000,
    ) -> None:
        self._db = db
        self._inbox_retention = inbox_retention
        self._outbox_retention = outbox_retention
        self._chunk = chunk
        self._loop = PeriodicTask("retention", self.prune, interval_s=interval_s, failure_pause_s=60.0)

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def prune(self, now: datetime | None = None) -> Pruned:
        now = now or datetime.now(UTC)
        inbox = await self._prune(_OLD_INBOX, now - self._inbox_retention)
        outbox = await self._prune(_OLD_OUTBOX, now - self._outbox_retention)
        if inbox or outbox:
            log.info("old inbox and outbox rows pruned", inbox=inbox, outbox=outbox)
        return Pruned(inbox, outbox)

    async def _prune(self, statement: Executable, cutoff: datetime) -> int:
        total = 0
        while True:
            async with self._db.transaction() as session:
                deleted = len((await session.execute(statement, {"cutoff": cutoff, "chunk": self._chunk})).all())
            total += deleted
            if deleted < self._chunk:
                return total
