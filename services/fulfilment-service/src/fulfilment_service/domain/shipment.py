"""The shipments of one order: planning them, and their state rebuilt from the order's stream. Pure.

An order ships as one parcel per warehouse in its allocations. In automatic mode a parcel is
picked, packed and handed to the carrier at once, so the stream `shipments-<order_id>` holds one
`Shipped` event per warehouse. Once an order has shipped, it never ships again.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from fulfilment_service.domain.carriers import carrier_for
from fulfilment_service.domain.dispatch import WarehouseCalendars
from oms_events import Message
from oms_events.messages import Shipped
from oms_events.values import Allocation, DeliveryMethod

STREAM_TYPE = "shipments"


def stream_id(order_id: UUID) -> str:
    return f"shipments-{order_id}"


def warehouses_of(allocations: Iterable[Allocation]) -> list[str]:
    """The warehouses an order ships from, each once, in a stable order."""
    return sorted({a.warehouse_id for a in allocations})


def plan_shipments(
    order_id: UUID,
    allocations: Sequence[Allocation],
    method: DeliveryMethod,
    *,
    now: datetime,
    calendars: WarehouseCalendars,
    new_shipment_id: Callable[[], UUID],
    new_entropy: Callable[[], int],
) -> list[Shipped]:
    """One `Shipped` per warehouse, with the method's carrier, a fresh tracking number and a delivery date."""
    if not allocations:
        raise ValueError("an order without allocations has nothing to ship")
    carrier = carrier_for(method)
    shipments = []
    for warehouse_id in warehouses_of(allocations):
        tracking_number = carrier.tracking_number(new_entropy())
        shipments.append(
            Shipped(
                order_id=order_id,
                shipment_id=new_shipment_id(),
                warehouse_id=warehouse_id,
                carrier=carrier.name,
                tracking_number=tracking_number,
                tracking_url=carrier.tracking_url(tracking_number),
                estimated_delivery=calendars.of(warehouse_id).estimated_delivery(method, now),
            )
        )
    return shipments


@dataclass(frozen=True)
class OrderShipments:
    """What has shipped for one order, folded from its events."""

    order_id: UUID
    version: int = 0
    shipped: tuple[Shipped, ...] = ()

    @classmethod
    def rebuild(cls, order_id: UUID, events: Iterable[Message]) -> "OrderShipments":
        state = cls(order_id)
        for event in events:
            state = state.apply(event)
        return state

    def apply(self, event: Message) -> "OrderShipments":
        shipped = (*self.shipped, event) if isinstance(event, Shipped) else self.shipped
        return OrderShipments(self.order_id, self.version + 1, shipped)

    @property
    def has_shipped(self) -> bool:
        return bool(self.shipped)
