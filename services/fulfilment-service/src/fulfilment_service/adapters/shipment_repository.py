"""Shipments in the event store, and their projection in PostgreSQL. Every method runs inside the
caller's transaction."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.performance_projection import ShipmentReportProjection
from fulfilment_service.adapters.tables import shipment_views
from fulfilment_service.domain.shipment import STREAM_TYPE, Shipment, stream_id
from oms_events import Message, MessageRegistry
from oms_runtime.eventstore import EventStore, StoredEvent
from oms_runtime.messaging import MessageContext


class ShipmentRepository:
    def __init__(self, store: EventStore | None = None, reports: ShipmentReportProjection | None = None) -> None:
        self._store = store or EventStore()
        self._reports = reports or ShipmentReportProjection()

    async def history(self, session: AsyncSession, shipment_id: UUID) -> list[StoredEvent]:
        return await self._store.load(session, stream_id(shipment_id))

    async def load(self, session: AsyncSession, registry: MessageRegistry, shipment_id: UUID) -> Shipment:
        stored = await self.history(session, shipment_id)
        return Shipment.rebuild(shipment_id, (registry.decode(s.envelope) for s in stored))

    async def save(self, ctx: MessageContext, shipment: Shipment, events: Sequence[Message]) -> None:
        """Appends the events (optimistic concurrency), queues them in the outbox, updates the projections."""
        if not events:
            return
        envelopes = await ctx.record(
            self._store, stream_id(shipment.shipment_id), STREAM_TYPE, shipment.version, events
        )
        for event in events:
            shipment.apply(event)
        await self.project(ctx.session, shipment)
        await self._reports.apply(
            ctx.session, shipment.shipment_id, list(zip(envelopes, events, strict=True)), version=shipment.version
        )

    async def project(self, session: AsyncSession, s: Shipment) -> None:
        """Writes the shipment's row of the projection as the aggregate is now."""
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
        statement = insert(shipment_views).values(values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[shipment_views.c.shipment_id],
                set_={**{k: statement.excluded[k] for k in values if k != "shipment_id"}, "updated_at": func.now()},
            )
        )

    async def of_order(self, session: AsyncSession, order_id: UUID) -> list[dict[str, Any]]:
        result = await session.execute(
            select(shipment_views).where(shipment_views.c.order_id == order_id).order_by(shipment_views.c.warehouse_id)
        )
        return [dict(row) for row in result.mappings().all()]

    async def view(self, session: AsyncSession, shipment_id: UUID) -> dict[str, Any] | None:
        row = (
            (await session.execute(select(shipment_views).where(shipment_views.c.shipment_id == shipment_id)))
            .mappings()
            .first()
        )
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

    async def by_tracking_number(self, session: AsyncSession, carrier: str, tracking_number: str) -> UUID | None:
        found: UUID | None = await session.scalar(
            select(shipment_views.c.shipment_id).where(
                shipment_views.c.carrier == carrier, shipment_views.c.tracking_number == tracking_number
            )
        )
        return found
