"""Carriers, tracking numbers and shipment planning. Pure."""

import re
import secrets
from uuid import uuid4

import pytest

from fulfilment_service.domain.carriers import DHL, DPD, UPS, Carrier, carrier_for, service_levels
from fulfilment_service.domain.shipment import lines_by_warehouse, shipment_id_for, warehouses_of
from oms_events.values import Allocation, DeliveryMethod

FORMATS = {
    DeliveryMethod.STANDARD: ("DHL", re.compile(r"^\d{10}$")),
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
    assert DHL.tracking_number(42) == "0" * 8 + "42"
    assert DPD.tracking_number(7) == "0" * 13 + "7"
    assert UPS.tracking_number(35) == "1Z" + "0" * 15 + "Z"


def test_tracking_numbers_from_random_entropy_are_unique() -> None:
    # DHL's 10 digits leave 10^10 numbers: 10,000 draws collide with a chance of about 0.5 %, so it is
    # checked on fewer draws (the unique constraint handles the rare collision in production).
    for carrier, draws in ((DHL, 1_000), (UPS, 10_000), (DPD, 10_000)):
        numbers = {carrier.tracking_number(secrets.randbits(128)) for _ in range(draws)}
        assert len(numbers) == draws


def test_negative_entropy_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        DHL.tracking_number(-1)


def test_tracking_urls_per_carrier() -> None:
    assert DHL.tracking_url("0123456789") == (
        "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id=0123456789"
    )
    assert UPS.tracking_url("1ZAB") == "https://www.ups.com/track?tracknum=1ZAB"
    assert DPD.tracking_url("0123") == "https://tracking.dpd.de/status/en_US/parcel/0123"


@pytest.mark.parametrize(
    ("carrier", "good", "bad"),
    [
        (DHL, "0123456789", ["012345678", "01234567890", "JD01234567", "012345678A"]),
        (UPS, "1Z999AA10123456784", ["1Z999AA1012345678", "2Z999AA10123456784", "1Z999aa10123456784"]),
        (DPD, "01234567890123", ["0123456789012", "0123456789012X"]),
    ],
)
def test_tracking_number_formats_are_recognised(carrier: Carrier, good: str, bad: list[str]) -> None:
    assert carrier.is_tracking_number(good)
    assert not any(carrier.is_tracking_number(b) for b in bad)


def test_service_levels_default_and_configured() -> None:
    levels = service_levels({})
    assert {m: (lvl.carrier.name, lvl.transit_business_days) for m, lvl in levels.items()} == {
        DeliveryMethod.STANDARD: ("DHL", 3),
        DeliveryMethod.EXPEDITED: ("UPS", 2),
        DeliveryMethod.NEXT_DAY: ("DPD", 1),
    }
    levels = service_levels({"standard": {"carrier": "DPD", "transit_business_days": 4}})
    assert (levels[DeliveryMethod.STANDARD].carrier, levels[DeliveryMethod.STANDARD].transit_business_days) == (DPD, 4)
    assert levels[DeliveryMethod.NEXT_DAY].carrier is DPD


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"overnight": {"carrier": "DHL"}}, "unknown delivery method"),
        ({"standard": {"carrier": "FedEx"}}, "unknown carrier"),
        ({"standard": {"transit_business_days": -1}}, "whole number"),
        ({"standard": {"transit_business_days": "2"}}, "whole number"),
    ],
)
def test_bad_service_levels_are_refused(config: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        service_levels(config)


def test_shipment_ids_are_stable_per_order_and_warehouse() -> None:
    order_id = uuid4()
    assert shipment_id_for(order_id, "WH-BER") == shipment_id_for(order_id, "WH-BER")
    assert shipment_id_for(order_id, "WH-BER") != shipment_id_for(order_id, "WH-LON")
    assert shipment_id_for(order_id, "WH-BER") != shipment_id_for(uuid4(), "WH-BER")


def test_lines_are_grouped_per_warehouse_one_line_per_sku() -> None:
    allocations = [
        Allocation(sku="B", warehouse_id="W2", quantity=1),
        Allocation(sku="A", warehouse_id="W1", quantity=2),
        Allocation(sku="B", warehouse_id="W2", quantity=3),
    ]
    assert warehouses_of(allocations) == ["W1", "W2"]
    assert lines_by_warehouse(allocations) == {
        "W1": [Allocation(sku="A", warehouse_id="W1", quantity=2)],
        "W2": [Allocation(sku="B", warehouse_id="W2", quantity=4)],
    }
