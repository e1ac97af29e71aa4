"""Shipments in the event store, and their projections in PostgreSQL. Every method runs inside the
caller's transaction.

A database statement costs about a millisecond all in (SQLAlchemy, asyncpg, the round trip that wakes
PostgreSQL), which made statements most of fulfilment's CPU per order. So a decision reads in one
statement every stream it needs (`load_many`: all the shipments of a ShipOrder, or of an order), and a
save writes in two: the events (the runtime's append, which also queues them for the outbox, all of a
decision's events in one), then both projections of the shipment, `shipment_views` and the performance
report's `shipment_reports`, as data-modifying CTEs of one statement. The report's row is folded from
the loaded stream and the new events, so it is never read first; the order's placing time, when a
ShipOrder brings it, is a third CTE of that statement.

The decisions' statements are constant SQL texts sent straight to asyncpg (`oms_runtime.driver`: about a
quarter of SQLAlchemy's Python per statement, each text prepared once per connection); the API's reads
stay on SQLAlchemy, built once.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.performance_projection import REPORT_COLUMNS, report_row, report_upsert_sql
from fulfilment_service.adapters.shipment_batch import ShipmentBatch
from fulfilment_service.adapters.tables import shipment_views
from fulfilment_service.domain.shipment import STREAM_TYPE, Shipment, stream_id
from oms_events import Envelope, Message, MessageRegistry
from oms_runtime.driver import fetch_in_transaction
from oms_runtime.eventstore import EventStore
from oms_runtime.messaging import MessageContext


@dataclass
class LoadedShipment:
    """A shipment loaded to decide on: the aggregate and the stream it was built from (the envelopes
    date the report's facts; a re-sent command is answered from them)."""

    shipment: Shipment
    history: list[tuple[Envelope, Message]] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.shipment.exists


_BATCH = "fulfilment_service.batch"
"""Where a batch transaction keeps its `ShipmentBatch` (the session's `info`)."""


class ShipmentRepository:
    def __init__(self, store: EventStore | None = None) -> None:
        self._store = store or EventStore()

    async def load(self, session: AsyncSession, registry: MessageRegistry, shipment_id: UUID) -> LoadedShipment:
        return (await self.load_many(session, registry, [shipment_id]))[shipment_id]

    async def load_many(
        self, session: AsyncSession, registry: MessageRegistry, shipment_ids: Sequence[UUID]
    ) -> dict[UUID, LoadedShipment]:
        """The shipments' streams in one statement; a shipment without a stream is new (not `exists`).

        Inside a batch (`begin_batch`) the shipments come from the batch, as its earlier decisions left
        them; the first load of a batch loads every shipment the batch named with the ones asked."""
        batch: ShipmentBatch | None = session.info.get(_BATCH)
        if batch is None:
            streams = {stream_id(s): s for s in shipment_ids}
            rows = await fetch_in_transaction(session, _LOAD, list(streams))
            return _loaded(registry, streams, rows)
        missing = [s for s in dict.fromkeys([*shipment_ids, *batch.wanted]) if s not in batch.loaded]
        batch.wanted.clear()
        if missing:
            streams = {stream_id(s): s for s in missing}
            rows = await fetch_in_transaction(session, _LOAD, list(streams))
            batch.loaded.update(_loaded(registry, streams, rows))
        return {s: batch.loaded[s] for s in shipment_ids}

    def begin_batch(self, session: AsyncSession, shipment_ids: Sequence[UUID]) -> None:
        """From here to `end_batch`, this transaction's decisions share the shipments and write once (see
        `shipment_batch`); the shipments named are loaded with the first load."""
        batch = ShipmentBatch(VIEW_COLUMNS)
        batch.wanted.extend(shipment_ids)
        session.info[_BATCH] = batch

    async def write_batch(self, session: AsyncSession) -> None:
        """Writes what the batch queued so far (before a decision that reads through the views)."""
        batch: ShipmentBatch | None = session.info.get(_BATCH)
        if batch is not None:
            await batch.write(session, self._store)

    async def end_batch(self, session: AsyncSession) -> None:
        batch: ShipmentBatch | None = session.info.pop(_BATCH, None)
        if batch is not None:
            await batch.write(session, self._store)

    async def load_of_order(
        self, session: AsyncSession, registry: MessageRegistry, order_id: UUID
    ) -> list[LoadedShipment]:
        """Every shipment of an order (as `shipment_views` knows them), by warehouse, in one statement."""
        rows = await fetch_in_transaction(session, _LOAD_OF_ORDER, order_id)
        streams = {row[0]: UUID(row[0].removeprefix("shipment-")) for row in rows}
        return list(_loaded(registry, streams, rows).values())

    async def load_by_tracking_number(
        self, session: AsyncSession, registry: MessageRegistry, carrier: str, tracking_number: str
    ) -> LoadedShipment | None:
        """The shipment a carrier's tracking number names (as `shipment_views` knows it), in one statement."""
        rows = await fetch_in_transaction(session, _LOAD_BY_TRACKING, carrier, tracking_number)
        if not rows:
            return None
        found = rows[0][0]
        shipment_id = UUID(found.removeprefix("shipment-"))
        return _loaded(registry, {found: shipment_id}, rows)[shipment_id]

    async def save(
        self,
        ctx: MessageContext,
        loaded: LoadedShipment,
        events: Sequence[Message],
        *,
        placed_at: datetime | None = None,
    ) -> None:
        """Appends the events (optimistic concurrency), queues them in the outbox, updates the projections;
        `placed_at` (the order's placing time) is recorded for the report unless one was before."""
        if not events:
            return
        shipment = loaded.shipment
        batch: ShipmentBatch | None = ctx.session.info.get(_BATCH)
        envelopes = await ctx.record(
            self._store,
            stream_id(shipment.shipment_id),
            STREAM_TYPE,
            shipment.version,
            events,
            pending=batch.appends if batch is not None else None,
        )
        for event in events:
            shipment.apply(event)
        loaded.history.extend(zip(envelopes, events, strict=True))
        if batch is not None:
            batch.loaded[shipment.shipment_id] = loaded
            report = report_row(shipment.shipment_id, loaded.history, version=shipment.version)
            batch.project(view_row(shipment), report, placed_at)
            return
        await self.project(ctx.session, loaded, placed_at=placed_at)

    async def project(
        self, session: AsyncSession, loaded: LoadedShipment, *, placed_at: datetime | None = None
    ) -> None:
        """Writes the shipment's rows of both projections as its stream is now, and the order's placing
        time when given, in one statement."""
        view = view_row(loaded.shipment)
        report = report_row(loaded.shipment.shipment_id, loaded.history, version=loaded.shipment.version)
        if report is None:
            await fetch_in_transaction(session, _VIEW_UPSERT, *view)
            return
        await fetch_in_transaction(session, _PROJECT, *view, *report, placed_at)

    async def of_order(self, session: AsyncSession, order_id: UUID) -> list[dict[str, Any]]:
        result = await session.execute(_OF_ORDER, {"order_id": order_id})
        return [dict(row) for row in result.mappings().all()]

    async def view(self, session: AsyncSession, shipment_id: UUID) -> dict[str, Any] | None:
        row = (await session.execute(_VIEW, {"shipment_id": shipment_id})).mappings().first()
        return dict(row) if row else None

    async def pick_lists(
        self, session: AsyncSession, warehouse_id: str, statuses: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        result = await session.execute(
            select(shipment_views)
            .where(shipment_views.c.warehouse_id == warehouse_id, shipment_views.c.status.in_(statuses))
            .order_by(shipment_views.c.created_at, shipment_views.c.shipment_id)
            .limit(limit)
        )
        return [dict(row) for row in result.mappings().all()]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


VIEW_COLUMNS: Final = (
    "shipment_id",
    "order_id",
    "warehouse_id",
    "status",
    "delivery_method",
    "lines",
    "picked",
    "short",
    "parcels",
    "carrier",
    "tracking_number",
    "tracking_url",
    "estimated_delivery",
    "location",
    "version",
)
"""The columns a save writes to `shipment_views` (all but the timestamps), in `view_row`'s order."""


def view_row(s: Shipment) -> list[Any]:
    """The shipment's row of `shipment_views` as the aggregate is now, in `VIEW_COLUMNS`' order."""
    assert s.order_id is not None
    assert s.status is not None
    return [
        s.shipment_id,
        s.order_id,
        s.warehouse_id,
        s.status.value,
        s.delivery_method.value if s.delivery_method else None,
        _json([line.model_dump(mode="json") for line in s.lines]),
        _json([line.model_dump(mode="json") for line in s.picked]),
        _json([line.model_dump(mode="json") for line in s.short]),
        _json([p.model_dump(mode="json") for p in s.parcels]),
        s.carrier,
        s.tracking_number,
        s.tracking_url,
        s.estimated_delivery,
        s.location,
        s.version,
    ]


def _loaded(registry: MessageRegistry, streams: dict[str, UUID], rows: Sequence[Any]) -> dict[UUID, LoadedShipment]:
    """Rows (stream_id, envelope as JSON text) in version order per stream -> the shipments, in `streams`'
    order. pydantic parses the text itself: cheaper than the driver's JSON decoding and a validation."""
    loaded = {shipment_id: LoadedShipment(Shipment(shipment_id)) for shipment_id in streams.values()}
    for stream, text in rows:
        envelope = Envelope.model_validate_json(text)
        message = registry.decode(envelope)
        found = loaded[streams[stream]]
        found.shipment.apply(message)
        found.history.append((envelope, message))
    return loaded


_JSONB_VIEW_COLUMNS: Final = frozenset({"lines", "picked", "short", "parcels"})
_VIEW_VALUES: Final = ", ".join(
    f"${i}::text::jsonb" if name in _JSONB_VIEW_COLUMNS else f"${i}" for i, name in enumerate(VIEW_COLUMNS, start=1)
)
_VIEW_UPSERT: Final = (
    f"INSERT INTO shipment_views ({', '.join(VIEW_COLUMNS)}) VALUES ({_VIEW_VALUES})"
    " ON CONFLICT (shipment_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in VIEW_COLUMNS if name != "shipment_id")
    + ", updated_at = now()"
)
"""Writes the shipment's `shipment_views` row (parameters in `VIEW_COLUMNS`' order)."""

_PLACED_AT: Final = len(VIEW_COLUMNS) + len(REPORT_COLUMNS) + 1
_PROJECT: Final = f"""
WITH write_view AS ({_VIEW_UPSERT}),
write_report AS ({report_upsert_sql(len(VIEW_COLUMNS) + 1)}),
write_placement AS (
    INSERT INTO order_placements (order_id, placed_at)
    SELECT $2::uuid, ${_PLACED_AT}::timestamptz WHERE ${_PLACED_AT}::timestamptz IS NOT NULL
    ON CONFLICT (order_id) DO NOTHING
)
SELECT true
"""
"""Both projections of a shipment and its order's placing time (NULL: none to record), in one statement:
data-modifying CTEs, which PostgreSQL runs whether or not the query reads them, on one snapshot (they
write different tables). Parameters: the view's row, the report's row, the placing time. The first
placing time recorded for an order stays (a split order's other shipments, a ShipOrder sent again)."""

_LOAD: Final = """
SELECT stream_id, envelope::text FROM events WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version
"""
_VIEWED_STREAMS: Final = """
FROM shipment_views AS v JOIN events AS e ON e.stream_id = 'shipment-' || v.shipment_id::text
"""
"""The streams of the shipments `shipment_views` holds, to load them by what the view knows."""
_LOAD_OF_ORDER: Final = f"""
SELECT e.stream_id, e.envelope::text {_VIEWED_STREAMS} WHERE v.order_id = $1::uuid ORDER BY v.warehouse_id, e.version
"""
_LOAD_BY_TRACKING: Final = f"""
SELECT e.stream_id, e.envelope::text {_VIEWED_STREAMS} WHERE v.carrier = $1::text AND v.tracking_number = $2::text
ORDER BY e.version
"""
_OF_ORDER = (
    select(shipment_views)
    .where(shipment_views.c.order_id == bindparam("order_id"))
    .order_by(shipment_views.c.warehouse_id)
)
_VIEW = select(shipment_views).where(shipment_views.c.shipment_id == bindparam("shipment_id"))
