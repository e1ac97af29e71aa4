"""Carriers, tracking numbers and shipment planning. Pure."""

import re
import secrets
from datetime import UTC, date, datetime
from itertools import count
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from fulfilment_service.domain.carriers import DHL, DPD, UPS, carrier_for
from fulfilment_service.domain.dispatch import DispatchCalendar, WarehouseCalendars
from fulfilment_service.domain.shipment import OrderShipments, plan_shipments, stream_id, warehouses_of
from oms_events.messages import Shipped, StockReserved
from oms_events.values import Allocation, DeliveryMethod

FORMATS = {
    DeliveryMethod.STANDARD: ("DHL", re.compile(r"^JD\d{18}$")),
    DeliveryMethod.EXPEDITED: ("UPS", re.compile(r"^1Z[0-9A-Z]{16}$")),
    DeliveryMethod.NEXT_DAY: ("DPD", re.compile(r"^\d{14}$")),
}


@pytest.mark.parametrize("method", list(DeliveryMethod))
def test_each_method_has_its_carrier_and_format(method: DeliveryMethod) -> None:
    name, pattern = FORMATS[method]
    carrier = carrier_for(method)
    assert carrier.name == name
    for entropy in (0, 1, secrets.randbits(128), 2**128 - 1):
        number = carrier.tracking_number(entropy)
        assert pattern.match(number), number
        assert number in carrier.tracking_url(number)
        assert carrier.tracking_url(number).startswith("https://")


def test_tracking_numbers_keep_leading_zeros() -> None:
    assert DHL.tracking_number(42) == "JD" + "0" * 16 + "42"
    assert DPD.tracking_number(7) == "0" * 13 + "7"
    assert UPS.tracking_number(35) == "1Z" + "0" * 15 + "Z"


def test_tracking_numbers_from_random_entropy_are_unique() -> None:
    for carrier in (DHL, UPS, DPD):
        numbers = {carrier.tracking_number(secrets.randbits(128)) for _ in range(10_000)}
        assert len(numbers) == 10_000


def test_negative_entropy_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        DHL.tracking_number(-1)


def test_tracking_urls_per_carrier() -> None:
    assert DHL.tracking_url("JD1") == (
        "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id=JD1"
    )
    assert UPS.tracking_url("1ZAB") == "https://www.ups.com/track?tracknum=1ZAB"
    assert DPD.tracking_url("0123") == "https://tracking.dpd.de/status/en_US/parcel/0123"


CALENDARS = WarehouseCalendars(
    default=DispatchCalendar(UTC),
    by_warehouse={"WH-BER": DispatchCalendar(ZoneInfo("Europe/Berlin"))},
)
TUESDAY_MORNING = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def test_one_shipment_per_warehouse() -> None:
    order_id = uuid4()
    entropy = count(1)
    allocations = [
        Allocation(sku="SKU-B", warehouse_id="WH-LON", quantity=1),
        Allocation(sku="SKU-A", warehouse_id="WH-BER", quantity=2),
        Allocation(sku="SKU-C", warehouse_id="WH-BER", quantity=1),
    ]
    shipments = plan_shipments(
        order_id,
        allocations,
        DeliveryMethod.EXPEDITED,
        now=TUESDAY_MORNING,
        calendars=CALENDARS,
        new_shipment_id=uuid4,
        new_entropy=lambda: next(entropy),
    )
    assert [s.warehouse_id for s in shipments] == ["WH-BER", "WH-LON"]
    assert {s.carrier for s in shipments} == {"UPS"}
    assert len({s.shipment_id for s in shipments}) == 2
    assert len({s.tracking_number for s in shipments}) == 2
    assert all(s.order_id == order_id for s in shipments)
    assert all(s.estimated_delivery == date(2026, 3, 5) for s in shipments)
    assert shipments[0].tracking_url == UPS.tracking_url(shipments[0].tracking_number)


def test_each_warehouse_uses_its_own_calendar() -> None:
    # 14:30 UTC: past the cut-off in Berlin (15:30), not in the UTC default warehouse.
    now = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)
    shipments = plan_shipments(
        uuid4(),
        [Allocation(sku="A", warehouse_id="WH-BER", quantity=1), Allocation(sku="A", warehouse_id="WH-X", quantity=1)],
        DeliveryMethod.NEXT_DAY,
        now=now,
        calendars=CALENDARS,
        new_shipment_id=uuid4,
        new_entropy=lambda: secrets.randbits(128),
    )
    assert {s.warehouse_id: s.estimated_delivery for s in shipments} == {
        "WH-BER": date(2026, 3, 5),
        "WH-X": date(2026, 3, 4),
    }


def test_nothing_to_ship_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to ship"):
        plan_shipments(
            uuid4(),
            [],
            DeliveryMethod.STANDARD,
            now=TUESDAY_MORNING,
            calendars=CALENDARS,
            new_shipment_id=uuid4,
            new_entropy=lambda: 1,
        )


def test_warehouses_of_lists_each_once_sorted() -> None:
    allocations = [
        Allocation(sku="A", warehouse_id="W2", quantity=1),
        Allocation(sku="B", warehouse_id="W1", quantity=1),
        Allocation(sku="C", warehouse_id="W2", quantity=1),
    ]
    assert warehouses_of(allocations) == ["W1", "W2"]


def test_order_shipments_rebuild() -> None:
    order_id = uuid4()
    shipped = Shipped(
        order_id=order_id,
        shipment_id=uuid4(),
        warehouse_id="WH-BER",
        carrier="DHL",
        tracking_number="JD000000000000000001",
        tracking_url=DHL.tracking_url("JD000000000000000001"),
        estimated_delivery=date(2026, 3, 6),
    )
    other = StockReserved(
        order_id=order_id, reservation_id=uuid4(), allocations=[Allocation(sku="A", warehouse_id="W", quantity=1)]
    )
    empty = OrderShipments.rebuild(order_id, [])
    assert (empty.has_shipped, empty.version) == (False, 0)
    state = OrderShipments.rebuild(order_id, [shipped, other])
    assert state.shipped == (shipped,)
    assert state.version == 2
    assert state.has_shipped
    assert stream_id(order_id) == f"shipments-{order_id}"
