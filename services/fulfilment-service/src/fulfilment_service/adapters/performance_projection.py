"""The performance report's tables: the `shipment_reports` projection, the orders' placing times, and the
query that reads a period's shipments with both and with their returned units.

`shipment_reports` is written in the transaction that records a shipment's events (ShipmentRepository),
and rebuilt with the other projections; idempotent by stream version like them (events at or below the
row's version are skipped). Returned units are read from `return_views` at query time: each return line
names the warehouse its units left from, which is the shipment of that order and warehouse.
"""

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, and_, cast, column, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.tables import order_placements, return_views, shipment_reports
from fulfilment_service.domain.performance import ShipmentFacts, ShipmentRecord, fold
from oms_events import Envelope, Message
from oms_runtime.logging import get_logger

log = get_logger(__name__)

_FACT_COLUMNS = [shipment_reports.c[f.name] for f in fields(ShipmentFacts)]
"""The row's columns in the order of ShipmentFacts' fields: a report reads many rows, positionally."""


def _facts(row: Sequence[Any]) -> ShipmentFacts:
    shipment_id, order_id, *rest = row[: len(_FACT_COLUMNS)]
    return ShipmentFacts(str(shipment_id), str(order_id), *rest)


class ShipmentReportProjection:
    async def apply(
        self, session: AsyncSession, shipment_id: UUID, events: Sequence[tuple[Envelope, Message]], *, version: int
    ) -> None:
        """Projects newly recorded events, versions `version - len(events) + 1 .. version`."""
        if not events:
            return
        first = version - len(events) + 1
        facts: ShipmentFacts | None = None
        stored = 0
        if first > 1:
            row = (
                await session.execute(
                    select(*_FACT_COLUMNS, shipment_reports.c.version)
                    .where(shipment_reports.c.shipment_id == shipment_id)
                    .with_for_update()
                )
            ).first()
            if row is not None:
                facts, stored = _facts(row), row.version
        fresh = [(e.occurred_at, m) for v, (e, m) in enumerate(events, start=first) if v > stored]
        if not fresh:
            return
        new = fold(facts, fresh)
        if new is None:
            log.warning("no shipment report row to update; rebuild the projections", shipment_id=str(shipment_id))
            return
        values = {**asdict(new), "shipment_id": shipment_id, "order_id": UUID(new.order_id), "version": version}
        statement = insert(shipment_reports).values(values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[shipment_reports.c.shipment_id],
                set_={k: statement.excluded[k] for k in values if k != "shipment_id"},
                where=shipment_reports.c.version < statement.excluded.version,
            )
        )


class OrderPlacements:
    async def record(self, session: AsyncSession, order_id: UUID, channel: str, placed_at: datetime) -> bool:
        """False when the order's placing was recorded before."""
        result = await session.execute(
            insert(order_placements)
            .values(order_id=order_id, channel=channel, placed_at=placed_at)
            .on_conflict_do_nothing(index_elements=[order_placements.c.order_id])
            .returning(order_placements.c.order_id)
        )
        return result.first() is not None


class PerformanceFacts:
    async def records(
        self, session: AsyncSession, start: datetime, end: datetime, warehouse_id: str | None = None
    ) -> list[ShipmentRecord]:
        """The shipments created in [start, end), with their orders' placing time and their returned units."""
        line = func.jsonb_array_elements(return_views.c.lines).table_valued(column("value", JSONB)).alias("line")
        returned = (
            select(func.sum(cast(line.c.value["quantity"].astext, Integer)).label("units"))
            .select_from(return_views)
            .join(line, true())
            .where(
                return_views.c.order_id == shipment_reports.c.order_id,
                line.c.value["warehouse_id"].astext == shipment_reports.c.warehouse_id,
            )
            .lateral("returned")
        )
        conditions = [shipment_reports.c.created_at >= start, shipment_reports.c.created_at < end]
        if warehouse_id is not None:
            conditions.append(shipment_reports.c.warehouse_id == warehouse_id)
        statement = (
            select(
                *_FACT_COLUMNS,
                order_placements.c.placed_at,
                func.coalesce(returned.c.units, literal_column("0")).label("returned_units"),
            )
            .select_from(
                shipment_reports.outerjoin(
                    order_placements, order_placements.c.order_id == shipment_reports.c.order_id
                ).outerjoin(returned, true())
            )
            .where(and_(*conditions))
        )
        rows = (await session.execute(statement)).all()
        return [ShipmentRecord(_facts(row), row.placed_at, int(row.returned_units)) for row in rows]
