"""Keeping the availability view (Redis) current from the stock events, and rebuilding it from their history.

The consumer (its own group on the inventory events topic) applies each StockLevelChanged to the view. A
rebuild reads the latest StockLevelChanged of every sku + warehouse from the event store and writes
only the view: it sends no commands and publishes nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.availability_view import AvailabilityView
from inventory_service.ledger import STOCK_STREAM_TYPE
from oms_events import Envelope, MessageRegistry
from oms_events.messages import StockLevelChanged
from oms_runtime.db import Database
from oms_runtime.eventstore import events_table
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext

log = get_logger(__name__)


_LEVELS = "inventory_service.availability_batch"
"""Where a batch transaction keeps the newest level of each sku + warehouse it saw (the session's `info`)."""


class AvailabilityProjection:
    """Applies each StockLevelChanged to the view; a polled batch's newest level per sku + warehouse, in one
    round trip at the batch's end (the view keeps the newest by `sequence` in any case)."""

    def __init__(self, view: AvailabilityView) -> None:
        self._view = view

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(StockLevelChanged, self.on_stock_level_changed)
        handlers.batch_scope = self
        return handlers

    async def begin(self, session: AsyncSession, messages: Sequence[Any]) -> None:
        session.info[_LEVELS] = {}

    async def end(self, session: AsyncSession) -> None:
        newest: dict[tuple[str, str], tuple[StockLevelChanged, str]] = session.info.pop(_LEVELS, {})
        await self._view.apply_many(list(newest.values()))

    async def on_stock_level_changed(self, ctx: MessageContext, event: StockLevelChanged) -> None:
        occurred = ctx.envelope.occurred_at.isoformat() if ctx.envelope else ""
        batch: dict[tuple[str, str], tuple[StockLevelChanged, str]] | None = ctx.session.info.get(_LEVELS)
        if batch is None:
            await self._view.apply(event, occurred)
            return
        key = (event.sku, event.warehouse_id)
        seen = batch.get(key)
        if seen is None or seen[0].sequence < event.sequence:
            batch[key] = (event, occurred)


@dataclass(frozen=True)
class RebuildResult:
    levels: int
    cleared: int


async def rebuild_view(db: Database, view: AvailabilityView, registry: MessageRegistry) -> RebuildResult:
    """Replaces the view by the latest level of every sku + warehouse in the event store."""
    async with db.transaction() as session:
        # The newest event of every stock stream.
        newest = (
            select(events_table.c.stream_id, func.max(events_table.c.version).label("version"))
            .where(events_table.c.stream_type == STOCK_STREAM_TYPE)
            .group_by(events_table.c.stream_id)
            .subquery()
        )
        rows = (
            await session.execute(
                select(events_table.c.envelope).join(
                    newest,
                    (events_table.c.stream_id == newest.c.stream_id) & (events_table.c.version == newest.c.version),
                )
            )
        ).scalars()
        latest = [Envelope.model_validate(envelope) for envelope in rows.all()]
    cleared = await view.clear()
    applied = 0
    for envelope in latest:
        event = registry.decode_any(envelope)
        if isinstance(event, StockLevelChanged):
            await view.apply(event, envelope.occurred_at.isoformat())
            applied += 1
    log.info("availability view rebuilt", levels=applied, cleared=cleared)
    return RebuildResult(levels=applied, cleared=cleared)
