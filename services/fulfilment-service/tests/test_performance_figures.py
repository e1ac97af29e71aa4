"""The performance report's arithmetic: a shipment's facts from its events, percentiles, on-time against the
promised date in the warehouse's time zone, overdue shipments, buckets and rates. Pure."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from fulfilment_service.domain.performance import (
    UNASSIGNED,
    GroupBy,
    ShipmentFacts,
    ShipmentRecord,
    fold,
    on_time,
    overdue,
    percentile,
    performance,
)
from oms_events.messages import (
    FulfilmentFailed,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentInTransit,
    ShipmentPicked,
    Shipped,
)
from oms_events.values import Allocation, DeliveryMethod

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


def line(sku: str, quantity: int) -> Allocation:
    return Allocation(sku=sku, warehouse_id="WH-BER", quantity=quantity)


def test_a_shipments_facts_follow_its_events_and_ignore_superseded_carrier_updates() -> None:
    order_id, shipment_id = uuid4(), uuid4()
    common = {"order_id": order_id, "shipment_id": shipment_id}
    shipped = Shipped(
        **common,
        warehouse_id="WH-BER",
        carrier="DHL",
        tracking_number="1234567890",
        tracking_url="https://track.example/1234567890",
        estimated_delivery=date(2026, 3, 5),
        lines=[line("SKU-A", 2)],
    )
    updates = {"carrier": "DHL", "tracking_number": "1234567890"}
    events = [
        (
            T0,
            ShipmentCreated(
                **common,
                warehouse_id="WH-BER",
                lines=[line("SKU-A", 3), line("SKU-B", 1)],
                delivery_method=DeliveryMethod.EXPEDITED,
            ),
        ),
        (
            T0 + timedelta(hours=1),
            ShipmentPicked(
                **common, warehouse_id="WH-BER", picked=[line("SKU-A", 2)], short=[line("SKU-A", 1), line("SKU-B", 1)]
            ),
        ),
        (T0 + timedelta(hours=2), shipped),
        (
            T0 + timedelta(days=1),
            ShipmentDeliveryFailed(**updates, **common, reason="nobody home", reported_at=T0 + timedelta(days=1)),
        ),
        (T0 + timedelta(days=2), ShipmentDelivered(**updates, **common, reported_at=T0 + timedelta(days=2, hours=3))),
        (T0 + timedelta(days=3), ShipmentInTransit(**updates, **common, reported_at=T0, superseded=True)),
        (
            T0 + timedelta(days=4),
            ShipmentDelivered(**updates, **common, reported_at=T0 + timedelta(days=9), superseded=True),
        ),
    ]
    facts = fold(None, events)
    assert facts == ShipmentFacts(
        shipment_id=str(shipment_id),
        order_id=str(order_id),
        warehouse_id="WH-BER",
        created_at=T0,
        units=4,
        delivery_method="expedited",
        carrier="DHL",
        shipped_at=T0 + timedelta(hours=2),
        promised_date=date(2026, 3, 5),
        shipped_units=2,
        short_units=2,
        delivered_at=T0 + timedelta(days=2, hours=3),
        delivery_failures=1,
    )
    assert fold(facts, []) == facts
    assert fold(None, events[1:]) is None, "nothing to report before the shipment was created"


def test_failed_and_cancelled_shipments_are_marked() -> None:
    order_id, shipment_id = uuid4(), uuid4()
    created = ShipmentCreated(order_id=order_id, shipment_id=shipment_id, warehouse_id="WH-1", lines=[line("A", 1)])
    failed = FulfilmentFailed(
        order_id=order_id, shipment_id=shipment_id, warehouse_id="WH-1", reason_code="short_pick", reason="none"
    )
    facts = fold(None, [(T0, created), (T0, failed)])
    assert facts is not None
    assert (facts.failed, facts.cancelled, facts.delivery_method) == (True, False, None)
    cancelled = ShipmentCancelled(order_id=order_id, shipment_id=shipment_id, warehouse_id="WH-1", reason="x")
    later = fold(None, [(T0, created), (T0, cancelled)])
    assert later is not None
    assert later.cancelled


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 90, 7.0),
        ([10.0, 20.0], 50, 15.0),
        ([40.0, 10.0, 30.0, 20.0], 50, 25.0),  # unsorted input: the middle two's mean
        ([10.0, 20.0, 30.0, 40.0], 90, 37.0),  # rank 0.9 x 3 = 2.7: 30 + 0.7 x 10
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0], 90, 10.0),  # an exact rank
        ([5.0, 5.0, 5.0], 90, 5.0),
    ],
)
def test_percentiles_interpolate_between_the_closest_ranks(values: list[float], p: int, expected: float | None) -> None:
    got = percentile(values, p)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def facts(**fields: object) -> ShipmentFacts:
    base: dict[str, object] = {
        "shipment_id": str(uuid4()),
        "order_id": str(uuid4()),
        "warehouse_id": "WH-BER",
        "created_at": T0,
        "units": 2,
    }
    return ShipmentFacts(**{**base, **fields})  # type: ignore[arg-type]


def test_on_time_is_judged_by_the_deliverys_date_where_the_warehouse_promised_it() -> None:
    promised = date(2026, 3, 5)
    late_evening_utc = datetime(2026, 3, 5, 23, 30, tzinfo=UTC)  # 00:30 on 6 March in Berlin
    shipped = {"shipped_at": T0, "promised_date": promised}
    assert on_time(facts(**shipped, delivered_at=late_evening_utc), UTC) is True
    assert on_time(facts(**shipped, delivered_at=late_evening_utc), BERLIN) is False
    assert on_time(facts(**shipped, delivered_at=datetime(2026, 3, 3, 10, tzinfo=UTC)), BERLIN) is True
    assert on_time(facts(**shipped), BERLIN) is None, "not delivered yet"


def test_a_shipment_is_overdue_once_its_promised_day_is_over_undelivered() -> None:
    promised = date(2026, 3, 5)
    out = facts(shipped_at=T0, promised_date=promised)
    assert not overdue(out, BERLIN, datetime(2026, 3, 5, 22, 59, tzinfo=UTC)), "23:59 in Berlin: still the day"
    assert overdue(out, BERLIN, datetime(2026, 3, 5, 23, 0, tzinfo=UTC))
    assert not overdue(facts(shipped_at=T0, promised_date=promised, delivered_at=T0), BERLIN, T0 + timedelta(days=9))
    assert not overdue(facts(shipped_at=T0, promised_date=promised, returned_to_sender=True), BERLIN, T0 + timedelta(9))
    assert not overdue(facts(), BERLIN, T0 + timedelta(days=9)), "still in the warehouse: not the carrier's delay"


def test_buckets_count_times_rates_and_problems() -> None:
    placed = T0 - timedelta(hours=1)
    promised = date(2026, 3, 4)
    records = [
        # Shipped 1 h after placing, delivered on time 24 h later; 1 of its 2 units returned.
        ShipmentRecord(
            facts(
                shipped_at=T0,
                shipped_units=2,
                promised_date=promised,
                delivered_at=T0 + timedelta(hours=24),
                carrier="DHL",
                delivery_method="standard",
            ),
            placed_at=placed,
            returned_units=1,
        ),
        # Shipped 3 h after placing, delivered late (5 March), short by one unit.
        ShipmentRecord(
            facts(
                shipped_at=T0 + timedelta(hours=2),
                shipped_units=1,
                short_units=1,
                promised_date=promised,
                delivered_at=datetime(2026, 3, 5, 12, tzinfo=UTC),
                carrier="DHL",
                delivery_method="standard",
            ),
            placed_at=placed,
        ),
        # Shipped without a known placing time, never delivered: overdue on 9 March.
        ShipmentRecord(
            facts(
                shipped_at=T0 + timedelta(hours=5),
                shipped_units=4,
                promised_date=promised,
                carrier="UPS",
                delivery_method="expedited",
            ),
        ),
        # Created the next day (in Berlin: 00:30 on 3 March), nothing found.
        ShipmentRecord(facts(created_at=datetime(2026, 3, 2, 23, 30, tzinfo=UTC), failed=True, short_units=2)),
    ]
    now = datetime(2026, 3, 9, 12, tzinfo=UTC)
    buckets, total = performance(records, GroupBy.DAY, zone=BERLIN, zone_of=lambda _: BERLIN, now=now)
    assert [key for key, _ in buckets] == ["2026-03-02", "2026-03-03"]
    assert performance(records, GroupBy.DAY, zone=UTC, zone_of=lambda _: BERLIN, now=now)[0][0][0] == "2026-03-02"
    assert len(performance(records, GroupBy.DAY, zone=UTC, zone_of=lambda _: BERLIN, now=now)[0]) == 1
    day = buckets[0][1]
    assert (day.shipments, day.shipped, day.delivered, day.on_time, day.late, day.overdue) == (3, 3, 2, 1, 1, 1)
    assert sorted(day.placed_to_shipped_s) == [3600.0, 3 * 3600.0]
    assert percentile(day.placed_to_shipped_s, 50) == 2 * 3600.0
    assert percentile(day.placed_to_shipped_s, 90) == pytest.approx(3600.0 + 0.9 * 7200.0)
    assert sorted(day.shipped_to_delivered_s) == [24 * 3600.0, (3 * 24 + 1) * 3600.0]
    assert day.on_time_rate == 0.5
    assert (day.short_picks, day.short_units, day.failed) == (1, 1, 0)
    assert day.returns_rate == pytest.approx(1 / 7)
    failed_day = buckets[1][1]
    assert (failed_day.shipments, failed_day.failed, failed_day.short_picks, failed_day.shipped) == (1, 1, 0, 0)
    assert (failed_day.on_time_rate, failed_day.returns_rate) == (None, None), "nothing delivered or shipped"
    assert (total.shipments, total.failed, total.late, total.shipped_units) == (4, 1, 1, 7)

    carriers, _ = performance(records, GroupBy.CARRIER, zone=UTC, zone_of=lambda _: UTC, now=now)
    assert [(key, p.shipments) for key, p in carriers] == [("DHL", 2), ("UPS", 1), (UNASSIGNED, 1)]
    methods, _ = performance(records, GroupBy.DELIVERY_METHOD, zone=UTC, zone_of=lambda _: UTC, now=now)
    assert [key for key, _ in methods] == ["expedited", "standard", UNASSIGNED]
    warehouses, _ = performance(records, GroupBy.WAREHOUSE, zone=UTC, zone_of=lambda _: UTC, now=now)
    assert [(key, p.shipments) for key, p in warehouses] == [("WH-BER", 4)]
