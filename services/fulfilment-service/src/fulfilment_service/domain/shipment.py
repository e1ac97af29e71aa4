"""The Shipment aggregate: one warehouse's part of an order, from pick list to the customer's door. Pure.

    created --start picking--> picking --confirm picks--> picked --pack--> packed --ship--> shipped
       |                          |                         (nothing picked: failed)
       +------- cancel -----------+----------------------------------------+--> cancelled

    shipped -> in_transit -> out_for_delivery -> delivered
                                   |  ^
                                   v  | (a later attempt)
                             delivery_failed -> returned_to_sender

A shipment is a stream of its own, `shipment-<shipment_id>`. Its id is derived from the order id and
the warehouse (`shipment_id_for`), so a re-sent ShipOrder finds the shipments the first one made and
never creates a second one.

Carrier updates never move a shipment backwards: an update of a lower rank than the current status
(a late "in transit" after "delivered") is recorded with `superseded=True` and changes nothing; an
update seen before (same `update_id`) is not recorded again. After `delivered` or
`returned_to_sender` nothing changes the status any more.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID, uuid5

from oms_events import Message
from oms_events.messages import (
    CarrierUpdate,
    FulfilmentFailed,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentInTransit,
    ShipmentOutForDelivery,
    ShipmentPacked,
    ShipmentPicked,
    ShipmentPickingStarted,
    ShipmentReturnedToSender,
    Shipped,
)
from oms_events.values import Allocation, DeliveryMethod, Parcel

STREAM_TYPE = "shipment"


def stream_id(shipment_id: UUID) -> str:
    return f"shipment-{shipment_id}"


def shipment_id_for(order_id: UUID, warehouse_id: str) -> UUID:
    """The id of an order's shipment from one warehouse: the same on every attempt."""
    return uuid5(order_id, f"shipment:{warehouse_id}")


def warehouses_of(allocations: Iterable[Allocation]) -> list[str]:
    """The warehouses an order ships from, each once, in a stable order."""
    return sorted({a.warehouse_id for a in allocations})


def lines_by_warehouse(allocations: Sequence[Allocation]) -> dict[str, list[Allocation]]:
    """The order's allocations per warehouse, one line per sku (quantities of repeated skus added up)."""
    grouped: dict[str, dict[str, int]] = {}
    for a in allocations:
        skus = grouped.setdefault(a.warehouse_id, {})
        skus[a.sku] = skus.get(a.sku, 0) + a.quantity
    return {
        warehouse: [Allocation(sku=sku, warehouse_id=warehouse, quantity=qty) for sku, qty in sorted(skus.items())]
        for warehouse, skus in sorted(grouped.items())
    }


class ShipmentStatus(StrEnum):
    CREATED = "created"
    PICKING = "picking"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    RETURNED_TO_SENDER = "returned_to_sender"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def has_left_warehouse(self) -> bool:
        return self in _CARRIER_RANK


# How far along the carrier's part a status is; a lower rank never replaces a higher one.
_CARRIER_RANK: Mapping[ShipmentStatus, int] = {
    ShipmentStatus.SHIPPED: 0,
    ShipmentStatus.IN_TRANSIT: 1,
    ShipmentStatus.OUT_FOR_DELIVERY: 2,
    ShipmentStatus.DELIVERY_FAILED: 3,
    ShipmentStatus.DELIVERED: 4,
    ShipmentStatus.RETURNED_TO_SENDER: 4,
}
_FINAL = (ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED_TO_SENDER)

CARRIER_EVENTS: Mapping[ShipmentStatus, type[CarrierUpdate]] = {
    ShipmentStatus.IN_TRANSIT: ShipmentInTransit,
    ShipmentStatus.OUT_FOR_DELIVERY: ShipmentOutForDelivery,
    ShipmentStatus.DELIVERED: ShipmentDelivered,
    ShipmentStatus.DELIVERY_FAILED: ShipmentDeliveryFailed,
    ShipmentStatus.RETURNED_TO_SENDER: ShipmentReturnedToSender,
}
_STATUS_OF_UPDATE = {cls: status for status, cls in CARRIER_EVENTS.items()}


class ShipmentStateError(Exception):
    """The shipment's status does not allow what was asked; the message says why."""

    def __init__(self, message: str, status: ShipmentStatus | None = None) -> None:
        super().__init__(message)
        self.status = status


class PickError(ValueError):
    """A pick confirmation that does not fit the pick list (unknown sku, more than ordered)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Dispatch:
    """What shipping needs to know besides the shipment: decided by the caller's settings and clock."""

    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date
    service_level: str


@dataclass
class Shipment:
    shipment_id: UUID
    version: int = 0
    order_id: UUID | None = None
    warehouse_id: str = ""
    status: ShipmentStatus | None = None
    delivery_method: DeliveryMethod | None = None
    mode: Literal["automatic", "manual"] | None = None
    lines: list[Allocation] = field(default_factory=list)
    picked: list[Allocation] = field(default_factory=list)
    short: list[Allocation] = field(default_factory=list)
    parcels: list[Parcel] = field(default_factory=list)
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    estimated_delivery: date | None = None
    service_level: str | None = None
    location: str | None = None
    status_reported_at: datetime | None = None
    update_ids: set[str] = field(default_factory=set)
    cancel_reason: str | None = None
    failure_reason: str | None = None

    @classmethod
    def rebuild(cls, shipment_id: UUID, events: Iterable[Message]) -> "Shipment":
        shipment = cls(shipment_id)
        for event in events:
            shipment.apply(event)
        return shipment

    @property
    def exists(self) -> bool:
        return self.status is not None

    def apply(self, event: Message) -> None:
        match event:
            case ShipmentCreated():
                self.order_id = event.order_id
                self.warehouse_id = event.warehouse_id
                self.lines = list(event.lines)
                self.delivery_method = event.delivery_method
                self.mode = event.mode
                self.status = ShipmentStatus.CREATED
            case ShipmentPickingStarted():
                self.status = ShipmentStatus.PICKING
            case ShipmentPicked():
                self.picked = list(event.picked)
                self.short = list(event.short)
                self.status = ShipmentStatus.PICKED
            case FulfilmentFailed():
                self.failure_reason = event.reason
                self.status = ShipmentStatus.FAILED
            case ShipmentPacked():
                self.parcels = list(event.parcels)
                self.status = ShipmentStatus.PACKED
            case Shipped():
                self.carrier = event.carrier
                self.tracking_number = event.tracking_number
                self.tracking_url = event.tracking_url
                self.estimated_delivery = event.estimated_delivery
                self.service_level = event.service_level
                self.status = ShipmentStatus.SHIPPED
            case ShipmentCancelled():
                self.cancel_reason = event.reason
                self.status = ShipmentStatus.CANCELLED
            case CarrierUpdate():
                if event.update_id is not None:
                    self.update_ids.add(event.update_id)
                if not event.superseded:
                    self.status = _STATUS_OF_UPDATE[type(event)]
                    self.status_reported_at = event.reported_at
                    self.location = event.location or self.location
            case _:
                raise ShipmentStateError(f"{type(event).__name__} is not a shipment event")
        self.version += 1

    # ------------------------------------------------------------------ decisions

    def _require(self, *allowed: ShipmentStatus, doing: str) -> UUID:
        if self.order_id is None or self.status is None:
            raise ShipmentStateError(f"shipment {self.shipment_id} does not exist")
        if self.status not in allowed:
            wanted = " or ".join(s.value for s in allowed)
            raise ShipmentStateError(
                f"cannot {doing} a shipment that is {self.status.value} (needs {wanted})", self.status
            )
        return self.order_id

    def create(
        self,
        order_id: UUID,
        warehouse_id: str,
        lines: Sequence[Allocation],
        method: DeliveryMethod,
        mode: Literal["automatic", "manual"] = "manual",
    ) -> list[Message]:
        if self.exists:
            return []
        if not lines:
            raise ValueError("a shipment needs lines")
        return [
            ShipmentCreated(
                order_id=order_id,
                shipment_id=self.shipment_id,
                warehouse_id=warehouse_id,
                lines=list(lines),
                delivery_method=method,
                mode=mode,
            )
        ]

    def start_picking(self) -> list[Message]:
        order_id = self._require(ShipmentStatus.CREATED, doing="start picking")
        return [
            ShipmentPickingStarted(
                order_id=order_id, shipment_id=self.shipment_id, warehouse_id=self.warehouse_id, mode=self.mode
            )
        ]

    def confirm_picks(self, found: Mapping[str, int]) -> list[Message]:
        """`found`: units found per sku; a sku of the pick list that is missing was not found at all.

        Units not found are a short pick: the shipment goes on with what was found (a partial shipment), or,
        when nothing at all was found, fails (`FulfilmentFailed`, which the saga compensates)."""
        order_id = self._require(ShipmentStatus.PICKING, doing="confirm picks of")
        ordered = {line.sku: line.quantity for line in self.lines}
        for sku, quantity in found.items():
            if sku not in ordered:
                raise PickError(f"{sku} is not on this pick list", field=sku)
            if quantity < 0:
                raise PickError(f"{sku}: a quantity cannot be negative", field=sku)
            if quantity > ordered[sku]:
                raise PickError(f"{sku}: {quantity} picked, but only {ordered[sku]} ordered", field=sku)
        picked, short = [], []
        for line in self.lines:
            got = found.get(line.sku, 0)
            if got:
                picked.append(line.model_copy(update={"quantity": got}))
            if got < line.quantity:
                short.append(line.model_copy(update={"quantity": line.quantity - got}))
        events: list[Message] = [
            ShipmentPicked(
                order_id=order_id,
                shipment_id=self.shipment_id,
                warehouse_id=self.warehouse_id,
                picked=picked,
                short=short,
                mode=self.mode,
            )
        ]
        if not picked:
            events.append(
                FulfilmentFailed(
                    order_id=order_id,
                    shipment_id=self.shipment_id,
                    warehouse_id=self.warehouse_id,
                    reason_code="short_pick",
                    reason="none of the shipment's units were found in the warehouse",
                )
            )
        return events

    def pack(self, parcels: Sequence[Parcel]) -> list[Message]:
        order_id = self._require(ShipmentStatus.PICKED, doing="pack")
        if not parcels:
            raise ValueError("packing needs at least one parcel")
        return [
            ShipmentPacked(
                order_id=order_id,
                shipment_id=self.shipment_id,
                warehouse_id=self.warehouse_id,
                parcels=list(parcels),
                mode=self.mode,
            )
        ]

    def ship(self, dispatch: Dispatch) -> list[Message]:
        order_id = self._require(ShipmentStatus.PACKED, doing="ship")
        return [
            Shipped(
                order_id=order_id,
                shipment_id=self.shipment_id,
                warehouse_id=self.warehouse_id,
                carrier=dispatch.carrier,
                tracking_number=dispatch.tracking_number,
                tracking_url=dispatch.tracking_url,
                estimated_delivery=dispatch.estimated_delivery,
                lines=self.picked,
                parcels=self.parcels,
                service_level=dispatch.service_level,
            )
        ]

    def cancel(self, reason: str) -> list[Message]:
        """Cancels a shipment that has not left the warehouse; a cancelled one again is no change."""
        if self.status in (ShipmentStatus.CANCELLED, ShipmentStatus.FAILED):
            return []
        order_id = self._require(
            ShipmentStatus.CREATED, ShipmentStatus.PICKING, ShipmentStatus.PICKED, ShipmentStatus.PACKED, doing="cancel"
        )
        return [
            ShipmentCancelled(
                order_id=order_id, shipment_id=self.shipment_id, warehouse_id=self.warehouse_id, reason=reason
            )
        ]

    def carrier_update(
        self,
        status: ShipmentStatus,
        *,
        reported_at: datetime,
        update_id: str,
        location: str | None = None,
        reason: str | None = None,
    ) -> list[Message]:
        """A carrier's status report. Empty when the same update was recorded before; `superseded` when
        it would move the shipment backwards (it is kept for the record, the status stays)."""
        if status not in CARRIER_EVENTS:
            raise ShipmentStateError(f"{status.value} is not a carrier status")
        if self.order_id is None or self.status is None:
            raise ShipmentStateError(f"shipment {self.shipment_id} does not exist")
        if not self.status.has_left_warehouse or self.carrier is None or self.tracking_number is None:
            raise ShipmentStateError(
                f"the shipment has not been handed to a carrier ({self.status.value})", self.status
            )
        if update_id in self.update_ids:
            return []
        cls = CARRIER_EVENTS[status]
        fields: dict[str, object] = {
            "order_id": self.order_id,
            "shipment_id": self.shipment_id,
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "location": location,
            "reported_at": reported_at,
            "update_id": update_id,
            "superseded": not self._moves_forward(status, reported_at),
        }
        if cls in (ShipmentDeliveryFailed, ShipmentReturnedToSender):
            fields["reason"] = reason or "not given by the carrier"
        return [cls.model_validate(fields)]

    def _moves_forward(self, status: ShipmentStatus, reported_at: datetime) -> bool:
        assert self.status is not None
        if self.status in _FINAL:
            return False
        if self.status is ShipmentStatus.DELIVERY_FAILED and status in (
            ShipmentStatus.IN_TRANSIT,
            ShipmentStatus.OUT_FOR_DELIVERY,
        ):
            # After a failed attempt the parcel goes out again; only a report newer than the failure says so.
            return self.status_reported_at is None or reported_at > self.status_reported_at
        return _CARRIER_RANK[status] > _CARRIER_RANK[self.status]


def automatic_parcel(lines: Sequence[Allocation], grams_per_unit: int) -> Parcel:
    """The parcel automatic mode packs: the warehouse's standard box, weighed by units (no scales)."""
    units = sum(line.quantity for line in lines)
    return Parcel(weight_grams=max(1, units * grams_per_unit), length_mm=400, width_mm=300, height_mm=200)
