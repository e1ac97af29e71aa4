"""The shipments projection in PostgreSQL. Every method runs inside the caller's transaction."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.tables import shipments
from oms_events.messages import Shipped


class ShipmentRepository:
    async def add_shipped(self, session: AsyncSession, events: Sequence[Shipped], shipped_at: datetime) -> None:
        if not events:
            return
        await session.execute(
            insert(shipments),
            [
                {
                    "shipment_id": e.shipment_id,
                    "order_id": e.order_id,
                    "warehouse_id": e.warehouse_id,
                    "carrier": e.carrier,
                    "tracking_number": e.tracking_number,
                    "tracking_url": e.tracking_url,
                    "estimated_delivery": e.estimated_delivery,
                    "status": "shipped",
                    "shipped_at": shipped_at,
                }
                for e in events
            ],
        )

    async def of_order(self, session: AsyncSession, order_id: UUID) -> list[Row[tuple[object, ...]]]:
        result = await session.execute(
            select(shipments).where(shipments.c.order_id == order_id).order_by(shipments.c.warehouse_id)
        )
        return list(result.all())
