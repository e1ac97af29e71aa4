"""The performance report's tables: the `shipment_reports` projection, the orders' placing times, and the
query that reads a period's shipments with both and with their returned units.

A shipment's `shipment_reports` row is folded from its whole stream (the repository has it loaded to
decide, so no read of the row is needed) and written by ShipmentRepository in the statement that writes
its `shipment_views` row, in the transaction that records its events; rebuilt with the other projections.
Idempotent by stream version like them: a row is only replaced by one of a higher version. Returned units
are read from `return_views` at query time: each return line names the warehouse its units left from,
which is the shipment of that order and warehouse.

The hot statements are built once, with bound parameters: building one per call (and its cache key) cost
more CPU than running it.
"""

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, and_, bindparam, cast, column, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from fulfilment_service.adapters.tables import order_placements, return_views, shipment_reports
from fulfilment_service.domain.performance import ShipmentFacts, ShipmentRecord, fold
from oms_events import Envelope, Message

_FACT_COLUMNS = [shipment_reports.c[f.name] for f in fields(ShipmentFacts)]
"""The row's columns in the order of ShipmentFacts' fields: a report reads many rows, positionally."""

REPORT_PREFIX = "r_"
"""The report row's parameters are named `r_<column>` (they share a statement with shipment_views')."""


def _facts(row: Sequence[Any]) -> ShipmentFacts:
    shipment_id, order_id, *rest = row[: len(_FACT_COLUMNS)]
    return ShipmentFacts(str(shipment_id), str(order_id), *rest)


def _report_upsert() -> Insert:
    names = [c.name for c in shipment_reports.c]
    statement = insert(shipment_reports).values({name: bindparam(REPORT_PREFIX + name) for name in names})
    return statement.on_conflict_do_update(
        index_elements=[shipment_reports.c.shipment_id],
        set_={name: statement.excluded[name] for name in names if name != "shipment_id"},
        where=shipment_reports.c.version < statement.excluded.version,
    )


REPORT_UPSERT = _report_upsert()
"""Writes a shipment's report row unless the stored one is as new (parameters `r_<column>`)."""


def report_params(
    shipment_id: UUID, history: Sequence[tuple[Envelope, Message]], *, version: int | None = None
) -> dict[str, Any] | None:
    """REPORT_UPSERT's parameters for the shipment whose stream is `history` (versions 1 .. `version`,
    the length of the history unless given); None for a stream that does not start with ShipmentCreated."""
    facts = fold(None, ((envelope.occurred_at, message) for envelope, message in history))
    if facts is None:
        return None
    values = {
        **asdict(facts),
        "shipment_id": shipment_id,
        "order_id": UUID(facts.order_id),
        "version": len(history) if version is None else version,
    }
    return {REPORT_PREFIX + name: value for name, value in values.items()}


class ShipmentReportProjection:
    async def write(
        self, session: AsyncSession, shipment_id: UUID, history: Sequence[tuple[Envelope, Message]]
    ) -> bool:
        """Writes the report row of a shipment from its stream, on its own (the repository writes it
        together with the shipment's view); False when the stream does not start a shipment."""
        params = report_params(shipment_id, history)
        if params is None:
            return False
        await session.execute(REPORT_UPSERT, params)
        return True


_RECORD_PLACEMENT = (
    insert(order_placements)
    .values(order_id=bindparam("order_id"), channel=bindparam("channel"), placed_at=bindparam("placed_at"))
    .on_conflict_do_nothing(index_elements=[order_placements.c.order_id])
    .returning(order_placements.c.order_id)
)


class OrderPlacements:
    async def record(self, session: AsyncSession, order_id: UUID, channel: str, placed_at: datetime) -> bool:
        """False when the order's placing was recorded before."""
        params = {"order_id": order_id, "channel": channel, "placed_at": placed_at}
        return (await session.execute(_RECORD_PLACEMENT, params)).first() is not None


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
