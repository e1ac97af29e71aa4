"""The performance report's tables: the `shipment_reports` projection, the orders' placing times, and the
query that reads a period's shipments with both and with their returned units.

A shipment's `shipment_reports` row is folded from its whole stream (the repository has it loaded to
decide, so no read of the row is needed) and written by ShipmentRepository in the statement that writes
its `shipment_views` row, in the transaction that records its events; rebuilt with the other projections.
Idempotent by stream version like them: a row is only replaced by one of a higher version. Returned units
are read from `return_views` at query time: each return line names the warehouse its units left from,
which is the shipment of that order and warehouse.

The hot statements are constant SQL texts sent straight to asyncpg (`oms_runtime.driver`), positional
parameters in `REPORT_COLUMNS`' order: building a statement per call (and its cache key) cost more CPU
than running it, and SQLAlchemy's execute about four times asyncpg's. An order's placing time comes with
its `ShipOrder` (`placed_at`) and is written in the statement that writes the shipment's projections
(`ShipmentRepository`); the report reads it from `order_placements`.
"""

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Integer, and_, cast, column, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.tables import order_placements, return_views, shipment_reports
from fulfilment_service.domain.performance import ShipmentFacts, ShipmentRecord, fold
from oms_events import Envelope, Message
from oms_runtime.driver import fetch_in_transaction

_FACT_COLUMNS = [shipment_reports.c[f.name] for f in fields(ShipmentFacts)]
"""The row's columns in the order of ShipmentFacts' fields: a report reads many rows, positionally."""

REPORT_COLUMNS: Final = tuple(c.name for c in shipment_reports.c)
"""The report row's columns, in the order of its statement's parameters."""


def _facts(row: Sequence[Any]) -> ShipmentFacts:
    shipment_id, order_id, *rest = row[: len(_FACT_COLUMNS)]
    return ShipmentFacts(str(shipment_id), str(order_id), *rest)


def report_upsert_sql(first: int) -> str:
    """The INSERT that writes a shipment's report row unless the stored one is as new; its parameters
    are `$first`, `$first + 1` ... in `REPORT_COLUMNS`' order (it shares a statement with shipment_views')."""
    placeholders = ", ".join(f"${first + i}" for i in range(len(REPORT_COLUMNS)))
    updates = ", ".join(f"{name} = excluded.{name}" for name in REPORT_COLUMNS if name != "shipment_id")
    return (
        f"INSERT INTO shipment_reports ({', '.join(REPORT_COLUMNS)}) VALUES ({placeholders})"
        f" ON CONFLICT (shipment_id) DO UPDATE SET {updates} WHERE shipment_reports.version < excluded.version"
    )


REPORT_UPSERT: Final = report_upsert_sql(1)


def report_row(
    shipment_id: UUID, history: Sequence[tuple[Envelope, Message]], *, version: int | None = None
) -> list[Any] | None:
    """The report row (in `REPORT_COLUMNS`' order) of the shipment whose stream is `history` (versions
    1 .. `version`, the length of the history unless given); None for a stream that does not start with
    ShipmentCreated."""
    facts = fold(None, ((envelope.occurred_at, message) for envelope, message in history))
    if facts is None:
        return None
    values = {
        **asdict(facts),
        "shipment_id": shipment_id,
        "order_id": UUID(facts.order_id),
        "version": len(history) if version is None else version,
    }
    return [values[name] for name in REPORT_COLUMNS]


class ShipmentReportProjection:
    async def write(
        self, session: AsyncSession, shipment_id: UUID, history: Sequence[tuple[Envelope, Message]]
    ) -> bool:
        """Writes the report row of a shipment from its stream, on its own (the repository writes it
        together with the shipment's view); False when the stream does not start a shipment."""
        row = report_row(shipment_id, history)
        if row is None:
            return False
        await fetch_in_transaction(session, REPORT_UPSERT, *row)
        return True


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
