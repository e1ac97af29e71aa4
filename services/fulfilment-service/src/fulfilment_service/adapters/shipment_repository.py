"""Shipments in the event store, and their projections in PostgreSQL. Every method runs inside the
caller's transaction.

A database statement costs about a millisecond all in (SQLAlchemy, asyncpg, the round trip that wakes
PostgreSQL), which made statements most of fulfilment's CPU per order. So a decision reads in one
statement every stream it needs (`load_many`: all the shipments of a ShipOrder, or of an order), and a
save writes in two: the events (the runtime's append, which also queues them for the outbox, all of a
decision's events in one), then both projections of the shipment, `shipment_views` and the performance
report's `shipment_reports`, as data-modifying CTEs of one statement. The report's row is folded from
the loaded stream and the new events, so it is never read first.

The statements are built once, with bound parameters.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import ARRAY, Executable, String, any_, bindparam, cast, func, literal, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from fulfilment_service.adapters.performance_projection import REPORT_UPSERT, report_params
from fulfilment_service.adapters.tables import shipment_views
from fulfilment_service.domain.shipment import STREAM_TYPE, Shipment, stream_id
from oms_events import Envelope, Message, MessageRegistry
from oms_runtime.eventstore import EventStore, events_table
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


class ShipmentRepository:
    def __init__(self, store: EventStore | None = None) -> None:
        self._store = store or EventStore()

    async def load(self, session: AsyncSession, registry: MessageRegistry, shipment_id: UUID) -> LoadedShipment:
        return (await self.load_many(session, registry, [shipment_id]))[shipment_id]

    async def load_many(
        self, session: AsyncSession, registry: MessageRegistry, shipment_ids: Sequence[UUID]
    ) -> dict[UUID, LoadedShipment]:
        """The shipments' streams in one statement; a shipment without a stream is new (not `exists`)."""
        streams = {stream_id(s): s for s in shipment_ids}
        rows = (await session.execute(_LOAD, {"streams": list(streams)})).all()
        return _loaded(registry, streams, rows)

    async def load_of_order(
        self, session: AsyncSession, registry: MessageRegistry, order_id: UUID
    ) -> list[LoadedShipment]:
        """Every shipment of an order (as `shipment_views` knows them), by warehouse, in one statement."""
        rows = (await session.execute(_LOAD_OF_ORDER, {"order_id": order_id})).all()
        streams = {row.stream_id: UUID(row.stream_id.removeprefix("shipment-")) for row in rows}
        return list(_loaded(registry, streams, rows).values())

    async def load_by_tracking_number(
        self, session: AsyncSession, registry: MessageRegistry, carrier: str, tracking_number: str
    ) -> LoadedShipment | None:
        """The shipment a carrier's tracking number names (as `shipment_views` knows it), in one statement."""
        params = {"carrier": carrier, "tracking_number": tracking_number}
        rows = (await session.execute(_LOAD_BY_TRACKING, params)).all()
        if not rows:
            return None
        shipment_id = UUID(rows[0].stream_id.removeprefix("shipment-"))
        return _loaded(registry, {rows[0].stream_id: shipment_id}, rows)[shipment_id]

    async def save(self, ctx: MessageContext, loaded: LoadedShipment, events: Sequence[Message]) -> None:
        """Appends the events (optimistic concurrency), queues them in the outbox, updates the projections."""
        if not events:
            return
        shipment = loaded.shipment
        envelopes = await ctx.record(
            self._store, stream_id(shipment.shipment_id), STREAM_TYPE, shipment.version, events
        )
        for event in events:
            shipment.apply(event)
        loaded.history.extend(zip(envelopes, events, strict=True))
        await self.project(ctx.session, loaded)

    async def project(self, session: AsyncSession, loaded: LoadedShipment) -> None:
        """Writes the shipment's rows of both projections as its stream is now, in one statement."""
        params = view_params(loaded.shipment)
        report = report_params(loaded.shipment.shipment_id, loaded.history, version=loaded.shipment.version)
        if report is None:
            await session.execute(_VIEW_UPSERT, params)
            return
        await session.execute(_PROJECT, {**params, **report})

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


VIEW_PREFIX = "v_"
"""The view row's parameters are named `v_<column>` (they share a statement with shipment_reports')."""


def view_params(s: Shipment) -> dict[str, Any]:
    """The shipment's row of `shipment_views` as the aggregate is now, as _VIEW_UPSERT's parameters."""
    assert s.order_id is not None
    assert s.status is not None
    values: dict[str, Any] = {
        "shipment_id": s.shipment_id,
        "order_id": s.order_id,
        "warehouse_id": s.warehouse_id,
        "status": s.status.value,
        "delivery_method": s.delivery_method.value if s.delivery_method else None,
        "lines": [line.model_dump(mode="json") for line in s.lines],
        "picked": [line.model_dump(mode="json") for line in s.picked],
        "short": [line.model_dump(mode="json") for line in s.short],
        "parcels": [p.model_dump(mode="json") for p in s.parcels],
        "carrier": s.carrier,
        "tracking_number": s.tracking_number,
        "tracking_url": s.tracking_url,
        "estimated_delivery": s.estimated_delivery,
        "location": s.location,
        "version": s.version,
    }
    return {VIEW_PREFIX + name: value for name, value in values.items()}


_VIEW_COLUMNS = [c.name for c in shipment_views.c if c.name not in ("created_at", "updated_at")]


def _view_upsert() -> Insert:
    statement = insert(shipment_views).values({name: bindparam(VIEW_PREFIX + name) for name in _VIEW_COLUMNS})
    return statement.on_conflict_do_update(
        index_elements=[shipment_views.c.shipment_id],
        set_={
            **{name: statement.excluded[name] for name in _VIEW_COLUMNS if name != "shipment_id"},
            "updated_at": func.now(),
        },
    )


def _project() -> Executable:
    """Both projections in one statement: data-modifying CTEs, which PostgreSQL runs whether or not the
    query reads them, on one snapshot (they write different tables)."""
    return select(true()).add_cte(_VIEW_UPSERT.cte("write_view"), REPORT_UPSERT.cte("write_report"))


def _loaded(registry: MessageRegistry, streams: dict[str, UUID], rows: Sequence[Any]) -> dict[UUID, LoadedShipment]:
    """Rows (stream_id, envelope) in version order per stream -> the shipments, in `streams`' order."""
    loaded = {shipment_id: LoadedShipment(Shipment(shipment_id)) for shipment_id in streams.values()}
    for row in rows:
        envelope = Envelope.model_validate(row.envelope)
        message = registry.decode(envelope)
        found = loaded[streams[row.stream_id]]
        found.shipment.apply(message)
        found.history.append((envelope, message))
    return loaded


_VIEW_UPSERT = _view_upsert()
_PROJECT = _project()
_LOAD = (
    select(events_table.c.stream_id, events_table.c.envelope)
    .where(events_table.c.stream_id == any_(bindparam("streams", type_=ARRAY(String))))
    .order_by(events_table.c.stream_id, events_table.c.version)
)
_VIEWED_STREAMS = shipment_views.join(
    events_table, events_table.c.stream_id == literal("shipment-") + cast(shipment_views.c.shipment_id, String)
)
"""The streams of the shipments `shipment_views` holds, to load them by what the view knows."""
_LOAD_OF_ORDER = (
    select(events_table.c.stream_id, events_table.c.envelope)
    .select_from(_VIEWED_STREAMS)
    .where(shipment_views.c.order_id == bindparam("order_id"))
    .order_by(shipment_views.c.warehouse_id, events_table.c.version)
)
_LOAD_BY_TRACKING = (
    select(events_table.c.stream_id, events_table.c.envelope)
    .select_from(_VIEWED_STREAMS)
    .where(
        shipment_views.c.carrier == bindparam("carrier"),
        shipment_views.c.tracking_number == bindparam("tracking_number"),
    )
    .order_by(events_table.c.version)
)
_OF_ORDER = (
    select(shipment_views)
    .where(shipment_views.c.order_id == bindparam("order_id"))
    .order_by(shipment_views.c.warehouse_id)
)
_VIEW = select(shipment_views).where(shipment_views.c.shipment_id == bindparam("shipment_id"))
