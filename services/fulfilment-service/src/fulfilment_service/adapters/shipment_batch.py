"""The ShipOrders of one polled batch, decided on shipments kept in memory and written once at its end.

Alone, a ShipOrder costs three statements: the load of its shipments, the append of their events and
their projections (`shipment_views`, the report's `shipment_reports`, the order's placing time). Inside
the runtime's batch transaction (`oms_runtime.messaging.BatchScope`) the repository loads every shipment
the batch's ShipOrders name in one statement, keeps them for the rest of the batch, queues the events
(`PendingAppends`) and the newest projection rows of each shipment, and writes them at the end: the
events in one statement (the streams' versions are checked there), the projections in another.

The other commands of the consumer (a cancel, a return) read shipments through the views; before one
runs, the repository writes what the batch queued so far (`ShipmentRepository.write_batch`), so that it
reads what a command alone would. A failure rolls the whole batch back and the runtime runs its records
one by one, without the batch.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Boolean, Date, DateTime, Integer, String, Table, Uuid
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.performance_projection import REPORT_COLUMNS
from fulfilment_service.adapters.tables import shipment_reports, shipment_views
from oms_runtime.driver import fetch_in_transaction
from oms_runtime.eventstore import EventStore, PendingAppends

_JSONB: Final = frozenset({"lines", "picked", "short", "parcels"})
_ARRAY_TYPES: Final = (
    (Uuid, "uuid"),
    (String, "text"),
    (DateTime, "timestamptz"),
    (Date, "date"),
    (Integer, "int"),
    (Boolean, "bool"),
)


def _array_type(table: Table, name: str) -> str:
    """The type of a column's array parameter: JSON travels as text (cast back in the SELECT)."""
    if name in _JSONB:
        return "text"
    kind = table.c[name].type
    for sql_type, array_type in _ARRAY_TYPES:
        if isinstance(kind, sql_type):
            return array_type
    raise TypeError(f"{table.name}.{name}: no array parameter type for {kind!r}")


def _upsert_many(table: Table, columns: tuple[str, ...], first: int, conflict: str) -> str:
    arrays = ", ".join(f"${first + i}::{_array_type(table, name)}[]" for i, name in enumerate(columns))
    values = ", ".join(f"v.{name}::jsonb" if name in _JSONB else f"v.{name}" for name in columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {values} "
        f"FROM unnest({arrays}) AS v({', '.join(columns)}) {conflict}"
    )


def _project_many(view_columns: tuple[str, ...]) -> str:
    view_updates = ", ".join(f"{name} = excluded.{name}" for name in view_columns if name != "shipment_id")
    report_updates = ", ".join(f"{name} = excluded.{name}" for name in REPORT_COLUMNS if name != "shipment_id")
    placements = len(view_columns) + len(REPORT_COLUMNS) + 1
    views = _upsert_many(
        shipment_views,
        view_columns,
        1,
        f"ON CONFLICT (shipment_id) DO UPDATE SET {view_updates}, updated_at = now()",
    )
    reports = _upsert_many(
        shipment_reports,
        REPORT_COLUMNS,
        len(view_columns) + 1,
        f"ON CONFLICT (shipment_id) DO UPDATE SET {report_updates} WHERE shipment_reports.version < excluded.version",
    )
    return f"""
WITH write_views AS ({views}),
write_reports AS ({reports}),
write_placements AS (
    INSERT INTO order_placements (order_id, placed_at)
    SELECT p.order_id, p.placed_at FROM unnest(${placements}::uuid[], ${placements + 1}::timestamptz[])
        AS p(order_id, placed_at)
    ON CONFLICT (order_id) DO NOTHING
)
SELECT true
"""


@dataclass
class ShipmentBatch:
    """The shipments of one batch transaction, and the writes their decisions queued."""

    view_columns: tuple[str, ...]
    wanted: list[UUID] = field(default_factory=list)
    """Shipments the batch's commands name, loaded with the batch's first load."""
    loaded: dict[UUID, Any] = field(default_factory=dict)
    """Shipment id -> `LoadedShipment`, as the batch's decisions left it."""
    appends: PendingAppends = field(default_factory=PendingAppends)
    views: dict[UUID, list[Any]] = field(default_factory=dict)
    reports: dict[UUID, list[Any]] = field(default_factory=dict)
    placements: dict[UUID, datetime] = field(default_factory=dict)

    def project(self, view: list[Any], report: list[Any] | None, placed_at: datetime | None) -> None:
        """The shipment's rows as it is now (the newest replace the ones queued before)."""
        shipment_id, order_id = view[0], view[1]
        self.views[shipment_id] = view
        if report is not None:
            self.reports[shipment_id] = report
        if placed_at is not None:
            self.placements.setdefault(order_id, placed_at)  # the first one recorded stays

    async def write(self, session: AsyncSession, store: EventStore) -> None:
        """Writes what was queued since the last write: the events, then the projections."""
        await store.append_pending(session, self.appends)
        if self.views or self.reports or self.placements:
            await fetch_in_transaction(session, _statement(self.view_columns), *self._params())
        self.views.clear()
        self.reports.clear()
        self.placements.clear()

    def _params(self) -> list[Any]:
        views = [list(column) for column in zip(*self.views.values(), strict=True)] or [[] for _ in self.view_columns]
        reports = [list(column) for column in zip(*self.reports.values(), strict=True)] or [[] for _ in REPORT_COLUMNS]
        return [*views, *reports, list(self.placements), list(self.placements.values())]


_STATEMENTS: dict[tuple[str, ...], str] = {}


def _statement(view_columns: tuple[str, ...]) -> str:
    if view_columns not in _STATEMENTS:
        _STATEMENTS[view_columns] = _project_many(view_columns)
    return _STATEMENTS[view_columns]
