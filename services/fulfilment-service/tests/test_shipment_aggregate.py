"""The Shipment aggregate: its states, the warehouse's steps, short picks and carrier updates. Pure."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from fulfilment_service.domain.shipment import (
    Dispatch,
    PickError,
    Shipment,
    ShipmentStateError,
    ShipmentStatus,
    automatic_parcel,
)
from oms_events import Message
from oms_events.messages import (
    CarrierUpdate,
    FulfilmentFailed,
    ShipmentCancelled,
    ShipmentDelivered,
    ShipmentInTransit,
    ShipmentPicked,
    Shipped,
)
from oms_events.values import Allocation, DeliveryMethod, Parcel

LINES = [
    Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2),
    Allocation(sku="SKU-B", warehouse_id="WH-1", quantity=1),
]
PARCEL = Parcel(weight_grams=1200, length_mm=300, width_mm=200, height_mm=100)
DISPATCH = Dispatch("DHL", "0123456789", "https://example.invalid/0123456789", date(2026, 3, 6), "standard")
T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def step(shipment: Shipment, events: list[Message]) -> list[Message]:
    for event in events:
        shipment.apply(event)
    return events


def created() -> Shipment:
    shipment = Shipment(uuid4())
    step(shipment, shipment.create(uuid4(), "WH-1", LINES, DeliveryMethod.STANDARD))
    return shipment


def shipped() -> Shipment:
    shipment = created()
    step(shipment, shipment.start_picking())
    step(shipment, shipment.confirm_picks({"SKU-A": 2, "SKU-B": 1}))
    step(shipment, shipment.pack([PARCEL]))
    step(shipment, shipment.ship(DISPATCH))
    return shipment


def update(
    shipment: Shipment, status: ShipmentStatus, at: datetime, update_id: str | None = None
) -> list[CarrierUpdate]:
    events = step(
        shipment,
        shipment.carrier_update(status, reported_at=at, update_id=update_id or f"{status}-{at}", location="Leipzig"),
    )
    return [e for e in events if isinstance(e, CarrierUpdate)]


def status_of(shipment: Shipment) -> ShipmentStatus | None:
    return shipment.status


def test_the_whole_way_from_pick_list_to_door() -> None:
    shipment = shipped()
    assert shipment.status is ShipmentStatus.SHIPPED
    assert (shipment.carrier, shipment.tracking_number, shipment.parcels) == ("DHL", "0123456789", [PARCEL])
    assert shipment.picked == LINES
    assert shipment.short == []
    for status, hours in (
        (ShipmentStatus.IN_TRANSIT, 1),
        (ShipmentStatus.OUT_FOR_DELIVERY, 20),
        (ShipmentStatus.DELIVERED, 24),
    ):
        [event] = update(shipment, status, T0 + timedelta(hours=hours))
        assert not event.superseded
        assert shipment.status is status
    assert shipment.location == "Leipzig"
    assert shipment.version == 8


def test_shipped_carries_the_picked_lines_and_parcels() -> None:
    shipment = created()
    step(shipment, shipment.start_picking())
    step(shipment, shipment.confirm_picks({"SKU-A": 1, "SKU-B": 1}))
    step(shipment, shipment.pack([PARCEL, PARCEL]))
    [event] = shipment.ship(DISPATCH)
    assert isinstance(event, Shipped)
    assert event.lines == [LINES[0].model_copy(update={"quantity": 1}), LINES[1]]
    assert event.parcels == [PARCEL, PARCEL]
    assert event.service_level == "standard"


@pytest.mark.parametrize(
    ("prepare", "action"),
    [
        (lambda s: None, lambda s: s.confirm_picks({})),
        (lambda s: None, lambda s: s.pack([PARCEL])),
        (lambda s: None, lambda s: s.ship(DISPATCH)),
        (lambda s: step(s, s.start_picking()), lambda s: s.start_picking()),
        (lambda s: step(s, s.start_picking()), lambda s: s.ship(DISPATCH)),
    ],
)
def test_steps_out_of_order_are_refused(prepare: object, action: object) -> None:
    shipment = created()
    assert callable(prepare)
    assert callable(action)
    prepare(shipment)
    with pytest.raises(ShipmentStateError, match="cannot"):
        action(shipment)


def test_a_missing_shipment_is_refused() -> None:
    with pytest.raises(ShipmentStateError, match="does not exist"):
        Shipment(uuid4()).start_picking()


def test_a_short_pick_ships_what_was_found() -> None:
    shipment = created()
    step(shipment, shipment.start_picking())
    [picked] = step(shipment, shipment.confirm_picks({"SKU-A": 1}))
    assert isinstance(picked, ShipmentPicked)
    assert picked.picked == [LINES[0].model_copy(update={"quantity": 1})]
    assert picked.short == [LINES[0].model_copy(update={"quantity": 1}), LINES[1]]
    assert shipment.status is ShipmentStatus.PICKED


def test_nothing_found_fails_the_shipment() -> None:
    shipment = created()
    step(shipment, shipment.start_picking())
    picked, failed = step(shipment, shipment.confirm_picks({"SKU-A": 0}))
    assert isinstance(picked, ShipmentPicked)
    assert picked.picked == []
    assert isinstance(failed, FulfilmentFailed)
    assert (failed.reason_code, failed.shipment_id, failed.warehouse_id) == ("short_pick", shipment.shipment_id, "WH-1")
    assert shipment.status is ShipmentStatus.FAILED
    with pytest.raises(ShipmentStateError):
        shipment.pack([PARCEL])


@pytest.mark.parametrize(
    ("found", "message"),
    [({"SKU-Z": 1}, "not on this pick list"), ({"SKU-A": 3}, "only 2 ordered"), ({"SKU-A": -1}, "negative")],
)
def test_picks_that_do_not_fit_the_pick_list_are_refused(found: dict[str, int], message: str) -> None:
    shipment = created()
    step(shipment, shipment.start_picking())
    with pytest.raises(PickError, match=message):
        shipment.confirm_picks(found)


def test_the_same_carrier_update_twice_is_one_update() -> None:
    shipment = shipped()
    assert len(update(shipment, ShipmentStatus.IN_TRANSIT, T0, "dhl-1")) == 1
    version = shipment.version
    assert update(shipment, ShipmentStatus.IN_TRANSIT, T0, "dhl-1") == []
    assert shipment.version == version


def test_a_late_update_is_recorded_but_never_moves_the_shipment_back() -> None:
    shipment = shipped()
    update(shipment, ShipmentStatus.DELIVERED, T0 + timedelta(hours=30))
    [late] = update(shipment, ShipmentStatus.IN_TRANSIT, T0 + timedelta(hours=2))
    assert isinstance(late, ShipmentInTransit)
    assert late.superseded
    assert shipment.status is ShipmentStatus.DELIVERED
    # Out of order before the end too: out for delivery first, then the older "in transit".
    other = shipped()
    update(other, ShipmentStatus.OUT_FOR_DELIVERY, T0 + timedelta(hours=20))
    [older] = update(other, ShipmentStatus.IN_TRANSIT, T0 + timedelta(hours=2))
    assert older.superseded
    assert other.status is ShipmentStatus.OUT_FOR_DELIVERY


def test_a_failed_delivery_is_tried_again_only_by_a_newer_report() -> None:
    shipment = shipped()
    update(shipment, ShipmentStatus.DELIVERY_FAILED, T0 + timedelta(hours=20))
    [stale] = update(shipment, ShipmentStatus.OUT_FOR_DELIVERY, T0 + timedelta(hours=10))
    assert stale.superseded
    assert shipment.status is ShipmentStatus.DELIVERY_FAILED
    update(shipment, ShipmentStatus.OUT_FOR_DELIVERY, T0 + timedelta(hours=44))
    assert status_of(shipment) is ShipmentStatus.OUT_FOR_DELIVERY
    [delivered] = update(shipment, ShipmentStatus.DELIVERED, T0 + timedelta(hours=46))
    assert isinstance(delivered, ShipmentDelivered)
    assert status_of(shipment) is ShipmentStatus.DELIVERED


def test_returned_to_sender_is_final() -> None:
    shipment = shipped()
    update(shipment, ShipmentStatus.RETURNED_TO_SENDER, T0 + timedelta(hours=50))
    [late] = update(shipment, ShipmentStatus.DELIVERED, T0 + timedelta(hours=60))
    assert late.superseded
    assert shipment.status is ShipmentStatus.RETURNED_TO_SENDER


def test_carrier_updates_need_a_shipped_shipment() -> None:
    with pytest.raises(ShipmentStateError, match="not been handed"):
        created().carrier_update(ShipmentStatus.IN_TRANSIT, reported_at=T0, update_id="x")


def test_cancel_before_shipping_only() -> None:
    shipment = created()
    step(shipment, shipment.start_picking())
    [cancelled] = step(shipment, shipment.cancel("customer changed their mind"))
    assert isinstance(cancelled, ShipmentCancelled)
    assert shipment.status is ShipmentStatus.CANCELLED
    assert shipment.cancel("again") == []
    with pytest.raises(ShipmentStateError, match="cannot cancel"):
        shipped().cancel("too late")


def test_a_created_shipment_is_not_created_again() -> None:
    shipment = created()
    assert shipment.create(uuid4(), "WH-1", LINES, DeliveryMethod.STANDARD) == []


def test_the_automatic_parcel_is_weighed_by_units() -> None:
    assert automatic_parcel(LINES, 500).weight_grams == 1500
