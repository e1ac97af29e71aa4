"""The performance report's projection, placing times and report, and GET /reports/fulfilment, on the real
PostgreSQL in a throwaway schema (no Kafka: messages go through the runtime's processor).

- Shipments the handlers really ship (automatic and manual warehouses, a short pick, a carrier's
  delivery) get their `shipment_reports` row in the same transaction, and a rebuild gives the same rows.
- The report's figures come from shipments whose event times the test sets, checked against numbers
  worked out by hand below.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import insert, select, text

from fulfilment_service.adapters.performance_projection import PerformanceFacts, ShipmentReportProjection
from fulfilment_service.adapters.shipment_repository import ShipmentRepository
from fulfilment_service.adapters.tables import metadata, order_placements, shipment_reports
from fulfilment_service.domain.dispatch import DispatchCalendar, WarehouseCalendars
from fulfilment_service.domain.performance import GroupBy
from fulfilment_service.domain.shipment import ShipmentStatus, shipment_id_for
from fulfilment_service.entrypoints.report_routes import report_router
from fulfilment_service.handlers import FulfilmentConfig, FulfilmentHandlers, FulfilmentOperations, WarehouseMode
from fulfilment_service.performance_report import CSV_COLUMNS, PerformanceQuery, PerformanceReports
from fulfilment_service.rebuild_projection import rebuild
from oms_events import Message, default_registry
from oms_events.messages import (
    AuthoriseReturn,
    FulfilmentFailed,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentPicked,
    ShipOrder,
    Shipped,
)
from oms_events.values import Address, Allocation, DeliveryMethod
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator, install_error_handlers
from oms_runtime.messaging import Outcome
from oms_runtime.reports import report_period
from oms_runtime.testing import HandlerHarness, throwaway_schema

REGISTRY = default_registry()
BERLIN, LONDON = ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/London")
CALENDARS = WarehouseCalendars(
    default=DispatchCalendar(UTC), by_warehouse={"WH-BER": DispatchCalendar(BERLIN), "WH-LON": DispatchCalendar(LONDON)}
)
MONDAY = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
ADDRESS = Address(name="Jane Doe", line1="1 Example Street", city="Berlin", postal_code="10115", country="DE")
OPS, BERLIN_KEY, ANY_WAREHOUSE, WEB = (f"{n}-key-0123456789abcdef" for n in ("ops", "berlin", "wh", "web"))
KEYS = json.dumps(
    [
        {"name": "ops", "key": OPS, "role": "ops"},
        {"name": "berlin", "key": BERLIN_KEY, "role": "warehouse", "warehouse_id": "WH-BER"},
        {"name": "wh", "key": ANY_WAREHOUSE, "role": "warehouse"},
        {"name": "web", "key": WEB, "role": "channel", "channel": "web"},
    ]
)


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_performance", metadata) as database:
        yield database


def at(hours: float) -> datetime:
    return MONDAY + timedelta(hours=hours)


def line(sku: str, quantity: int, warehouse: str) -> Allocation:
    return Allocation(sku=sku, warehouse_id=warehouse, quantity=quantity)


async def placed(db: Database, order_id: UUID, when: datetime) -> None:
    """The order's placing time, as its first ShipOrder's `placed_at` records it (the handlers' path is
    tested below and in test_fulfilment_statement_counts)."""
    async with db.transaction() as session:
        await session.execute(insert(order_placements).values(order_id=order_id, placed_at=when))


async def shipment(db: Database, order_id: UUID, warehouse: str, events: Sequence[tuple[datetime, Message]]) -> None:
    """A shipment's events with the times they occurred at, projected as the repository projects them."""
    shipment_id = shipment_id_for(order_id, warehouse)
    batch = [
        (REGISTRY.wrap(e, producer="fulfilment-service").model_copy(update={"occurred_at": t}), e) for t, e in events
    ]
    async with db.transaction() as session:
        # In two writes, as the steps of a manual warehouse arrive: the second replaces the first's row.
        assert await ShipmentReportProjection().write(session, shipment_id, batch[:1])
        if len(batch) > 1:
            assert await ShipmentReportProjection().write(session, shipment_id, batch)


def created(order_id: UUID, warehouse: str, lines: list[Allocation], method: DeliveryMethod) -> ShipmentCreated:
    return ShipmentCreated(
        order_id=order_id,
        shipment_id=shipment_id_for(order_id, warehouse),
        warehouse_id=warehouse,
        lines=lines,
        delivery_method=method,
        mode="manual",
    )


def shipped(order_id: UUID, warehouse: str, carrier: str, promised: date, lines: list[Allocation]) -> Shipped:
    return Shipped(
        order_id=order_id,
        shipment_id=shipment_id_for(order_id, warehouse),
        warehouse_id=warehouse,
        carrier=carrier,
        tracking_number=uuid4().hex[:10],
        tracking_url="https://track.example/",
        estimated_delivery=promised,
        lines=lines,
    )


def delivered(order_id: UUID, warehouse: str, when: datetime) -> ShipmentDelivered:
    return ShipmentDelivered(
        order_id=order_id,
        shipment_id=shipment_id_for(order_id, warehouse),
        carrier="DHL",
        tracking_number="x",
        reported_at=when,
    )


@pytest_asyncio.fixture(scope="module")
async def week(db: Database) -> dict[str, UUID]:
    """Five shipments of four orders, on Monday 2 and Tuesday 3 March 2026:

    s1  WH-BER standard DHL: placed 08:00, created 09:00, shipped 10:00 (2 units), promised Thu 5, delivered
        Wed 4 12:00 (on time; 50 h after shipping).
    s2  WH-BER expedited UPS: placed 08:00, created 09:30, 1 of 3 units short, shipped 12:00 (2 units),
        promised Wed 4, delivered Wed 4 23:30 UTC = Thu 5 00:30 in Berlin (late; 59.5 h); 1 unit returned.
    s3  WH-LON standard DHL, the same order as s2: created Tue 09:00, shipped Tue 11:00 (1 unit, 27 h after
        the order's placing), promised Fri 6, never delivered: overdue on 9 March.
    s4  WH-LON: created Tue 10:00 (its order's placing never seen), nothing found: failed.
    s5  WH-BER: created Tue 08:00, cancelled.
    """
    o1, o2, o4, o5 = uuid4(), uuid4(), uuid4(), uuid4()
    o3 = o2
    await placed(db, o1, at(8))
    await placed(db, o2, at(8))
    await placed(db, o5, at(24 + 7))
    ber, lon = "WH-BER", "WH-LON"
    await shipment(
        db,
        o1,
        ber,
        [
            (at(9), created(o1, ber, [line("SKU-A", 2, ber)], DeliveryMethod.STANDARD)),
            (at(10), shipped(o1, ber, "DHL", date(2026, 3, 5), [line("SKU-A", 2, ber)])),
            (at(60), delivered(o1, ber, at(60))),
        ],
    )
    await shipment(
        db,
        o2,
        ber,
        [
            (at(9.5), created(o2, ber, [line("SKU-B", 3, ber)], DeliveryMethod.EXPEDITED)),
            (
                at(11),
                ShipmentPicked(
                    order_id=o2,
                    shipment_id=shipment_id_for(o2, ber),
                    warehouse_id=ber,
                    picked=[line("SKU-B", 2, ber)],
                    short=[line("SKU-B", 1, ber)],
                ),
            ),
            (at(12), shipped(o2, ber, "UPS", date(2026, 3, 4), [line("SKU-B", 2, ber)])),
            (at(71.5), delivered(o2, ber, at(71.5))),
        ],
    )
    await shipment(
        db,
        o3,
        lon,
        [
            (at(24 + 9), created(o3, lon, [line("SKU-C", 1, lon)], DeliveryMethod.STANDARD)),
            (at(24 + 11), shipped(o3, lon, "DHL", date(2026, 3, 6), [line("SKU-C", 1, lon)])),
        ],
    )
    failed = FulfilmentFailed(
        order_id=o4, shipment_id=shipment_id_for(o4, lon), warehouse_id=lon, reason_code="short_pick", reason="none"
    )
    await shipment(
        db,
        o4,
        lon,
        [(at(24 + 10), created(o4, lon, [line("SKU-D", 2, lon)], DeliveryMethod.NEXT_DAY)), (at(24 + 11), failed)],
    )
    cancel = ShipmentCancelled(order_id=o5, shipment_id=shipment_id_for(o5, ber), warehouse_id=ber, reason="customer")
    await shipment(
        db,
        o5,
        ber,
        [(at(24 + 8), created(o5, ber, [line("SKU-E", 1, ber)], DeliveryMethod.STANDARD)), (at(24 + 9), cancel)],
    )
    # The customer of s2 and s3 sends one unit of s2 back (the return names the warehouse it left from).
    handlers = FulfilmentHandlers(ShipmentRepository(), CALENDARS, FulfilmentConfig(), clock=lambda: NOW)
    harness = HandlerHarness(db, "fulfilment-service", handlers.handler_map(), REGISTRY)
    back = AuthoriseReturn(order_id=o2, return_id=uuid4(), lines=[line("SKU-B", 1, ber)], reason="too small")
    assert await harness.send(back) is Outcome.PROCESSED
    return {"s1": o1, "s2": o2, "s4": o4, "s5": o5}


def reports(db: Database) -> PerformanceReports:
    zones = {"WH-BER": BERLIN, "WH-LON": LONDON}
    return PerformanceReports(db, lambda warehouse: zones.get(warehouse, UTC), clock=lambda: NOW)


async def report(db: Database, group_by: GroupBy, warehouse: str | None = None, tz: str = "UTC") -> Any:
    period = report_period("2026-03-02", "2026-03-08", tz)
    return await reports(db).report(PerformanceQuery(period=period, group_by=group_by, warehouse_id=warehouse))


def hours(h: float) -> float:
    return h * 3600.0


async def test_the_report_figures_of_a_known_week(db: Database, week: dict[str, UUID]) -> None:
    by_day = await report(db, GroupBy.DAY)
    monday, tuesday = by_day.buckets
    assert (monday.bucket, tuesday.bucket) == ("2026-03-02", "2026-03-03")
    assert (monday.shipments, monday.shipped, monday.delivered, monday.cancelled) == (2, 2, 2, 0)
    # Placed to shipped: 2 h (s1) and 4 h (s2); p90 interpolates 2 + 0.9 x 2.
    assert (monday.placed_to_shipped_p50_s, monday.placed_to_shipped_count) == (hours(3), 2)
    assert monday.placed_to_shipped_p90_s == pytest.approx(hours(3.8))
    # Shipped to delivered: 50 h (s1) and 59.5 h (s2).
    assert monday.shipped_to_delivered_p50_s == pytest.approx(hours(54.75))
    assert monday.shipped_to_delivered_p90_s == pytest.approx(hours(50 + 0.9 * 9.5))
    # s2 arrived at 00:30 on the 5th where WH-BER promised the 4th: late.
    assert (monday.on_time_rate, monday.late_shipments, monday.overdue_shipments) == (0.5, 1, 0)
    assert (monday.short_picks, monday.short_units, monday.failed_shipments) == (1, 1, 0)
    assert (monday.shipped_units, monday.returned_units, monday.returns_rate) == (4, 1, 0.25)

    assert (tuesday.shipments, tuesday.shipped, tuesday.delivered, tuesday.cancelled) == (3, 1, 0, 1)
    assert (tuesday.placed_to_shipped_p50_s, tuesday.placed_to_shipped_p90_s) == (hours(27), hours(27))
    assert (tuesday.shipped_to_delivered_p50_s, tuesday.shipped_to_delivered_count) == (None, 0)
    assert (tuesday.on_time_rate, tuesday.overdue_shipments, tuesday.failed_shipments) == (None, 1, 1)
    assert (tuesday.returns_rate, tuesday.short_picks) == (0.0, 0)

    total = by_day.total
    assert (total.shipments, total.shipped, total.delivered, total.placed_to_shipped_count) == (5, 3, 2, 3)
    assert total.placed_to_shipped_p50_s == hours(4)
    assert total.placed_to_shipped_p90_s == pytest.approx(hours(4 + 0.8 * 23))  # rank 0.9 x 2 = 1.8
    assert total.returns_rate == pytest.approx(1 / 5)

    by_carrier = {b.bucket: b.shipments for b in (await report(db, GroupBy.CARRIER)).buckets}
    assert by_carrier == {"DHL": 2, "UPS": 1, "unassigned": 2}
    by_method = {b.bucket: b.shipments for b in (await report(db, GroupBy.DELIVERY_METHOD)).buckets}
    assert by_method == {"expedited": 1, "next_day": 1, "standard": 3}
    by_warehouse = {b.bucket: (b.shipments, b.late_shipments) for b in (await report(db, GroupBy.WAREHOUSE)).buckets}
    assert by_warehouse == {"WH-BER": (3, 1), "WH-LON": (2, 0)}
    london = await report(db, GroupBy.DAY, warehouse="WH-LON")
    assert [(b.bucket, b.shipments) for b in london.buckets] == [("2026-03-03", 2)]
    # Days in Anchorage (UTC-9): Tuesday 08:00 UTC (s5) is still Monday there.
    anchorage = await report(db, GroupBy.DAY, tz="America/Anchorage")
    assert [(b.bucket, b.shipments) for b in anchorage.buckets] == [("2026-03-02", 3), ("2026-03-03", 2)]


@pytest_asyncio.fixture
async def api(db: Database, week: dict[str, UUID]) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(report_router(reports(db), ApiKeyAuthenticator.from_json(KEYS)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def get(api: httpx.AsyncClient, key: str, **params: str) -> httpx.Response:
    query = {"from": "2026-03-02", "to": "2026-03-08", **params}
    return await api.get("/reports/fulfilment", params=query, headers={"X-API-Key": key})


async def test_a_warehouse_key_limited_to_one_warehouse_sees_only_that_warehouse(api: httpx.AsyncClient) -> None:
    every = await get(api, OPS, group_by="warehouse")
    assert [b["bucket"] for b in every.json()["buckets"]] == ["WH-BER", "WH-LON"]
    assert [b["bucket"] for b in (await get(api, ANY_WAREHOUSE, group_by="warehouse")).json()["buckets"]] == [
        "WH-BER",
        "WH-LON",
    ]
    own = await get(api, BERLIN_KEY, group_by="warehouse")
    assert own.status_code == 200
    assert (own.json()["warehouse_id"], [b["bucket"] for b in own.json()["buckets"]]) == ("WH-BER", ["WH-BER"])
    assert own.json()["total"]["shipments"] == 3
    other = await get(api, BERLIN_KEY, warehouse="WH-LON")
    assert other.status_code == 403
    assert "WH-BER only" in other.json()["message"]
    assert (await get(api, WEB)).status_code == 403, "a channel key reads no fulfilment report"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "customer"}, "group_by"),
        ({"from": "2026-03-09"}, "from"),
        ({"tz": "Nowhere/Town"}, "tz"),
        ({"warehouse": ""}, "warehouse"),
        ({"format": "pdf"}, "format"),
    ],
)
async def test_bad_parameters_are_a_422_naming_the_field(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await get(api, OPS, **params)
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == [field]


async def test_the_csv_has_one_row_per_bucket_with_the_jsons_figures(api: httpx.AsyncClient) -> None:
    response = await api.get(
        "/reports/fulfilment",
        params={"from": "2026-03-02", "to": "2026-03-08", "group_by": "carrier"},
        headers={"X-API-Key": OPS, "Accept": "text/csv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(table[0]) == CSV_COLUMNS
    as_json = (await get(api, OPS, group_by="carrier")).json()["buckets"]
    assert table == [{k: "" if v is None else str(v) for k, v in b.items()} for b in as_json]
    assert [(r["bucket"], r["on_time_rate"]) for r in table] == [("DHL", "1.0"), ("UPS", "0.0"), ("unassigned", "")]


async def test_shipping_through_the_handlers_writes_the_rows_a_rebuild_writes_again(db: Database) -> None:
    handlers = FulfilmentHandlers(
        ShipmentRepository(), CALENDARS, FulfilmentConfig(modes={"WH-MAN": WarehouseMode.MANUAL}), clock=lambda: NOW
    )
    harness = HandlerHarness(db, "fulfilment-service", handlers.handler_map(), REGISTRY)
    operations = FulfilmentOperations(db, REGISTRY, handlers)
    order_id = uuid4()
    command = ShipOrder(
        order_id=order_id,
        allocations=[line("SKU-A", 2, "WH-BER"), line("SKU-B", 3, "WH-MAN")],
        shipping_address=ADDRESS,
        delivery_method=DeliveryMethod.EXPEDITED,
    )
    assert await harness.send(command) is Outcome.PROCESSED
    automatic, manual = shipment_id_for(order_id, "WH-BER"), shipment_id_for(order_id, "WH-MAN")
    await operations.run(lambda ctx: handlers.start_picking(ctx, manual))
    await operations.run(lambda ctx: handlers.confirm_picks(ctx, manual, {"SKU-B": 1}))
    view = await operations.run(lambda ctx: handlers.repository.view(ctx.session, automatic))
    assert view is not None
    await operations.run(
        lambda ctx: handlers.carrier_update(
            ctx,
            "UPS",
            str(view["tracking_number"]),
            ShipmentStatus.DELIVERED,
            reported_at=NOW,
            update_id="u-1",
            location=None,
            reason=None,
        )
    )
    assert await harness.send(command) is Outcome.PROCESSED, "a re-sent command changes no row"

    rows = await report_rows(db, order_id)
    auto_row, manual_row = rows[automatic], rows[manual]
    emitted = {type(m): m for m in await harness.emitted(order_id) if isinstance(m, Shipped)}
    assert auto_row["promised_date"] == emitted[Shipped].estimated_delivery
    assert (auto_row["carrier"], auto_row["units"], auto_row["shipped_units"], auto_row["delivered_at"]) == (
        "UPS",
        2,
        2,
        NOW,
    )
    assert auto_row["created_at"] <= auto_row["shipped_at"]
    assert (manual_row["shipped_at"], manual_row["short_units"], manual_row["units"]) == (None, 2, 3)
    assert (auto_row["version"], manual_row["version"]) == (6, 3)

    async with db.transaction() as session:  # damage the projection
        await session.execute(text("UPDATE shipment_reports SET delivered_at = NULL, short_units = 0"))
    await rebuild(db, REGISTRY)
    assert await report_rows(db, order_id) == rows
    async with db.transaction() as session:
        assert (
            await session.scalar(select(order_placements.c.order_id).where(order_placements.c.order_id == order_id))
            is None
        )


async def report_rows(db: Database, order_id: UUID) -> dict[UUID, dict[str, Any]]:
    async with db.transaction() as session:
        found = (
            (await session.execute(select(shipment_reports).where(shipment_reports.c.order_id == order_id)))
            .mappings()
            .all()
        )
    return {row["shipment_id"]: dict(row) for row in found}


async def test_the_placing_time_comes_with_ship_order_and_the_first_one_stays(db: Database) -> None:
    """ShipOrder's `placed_at` is the start of the placed-to-shipped time; a ShipOrder of an older
    order-service (no `placed_at`) leaves its shipments out of those times, unless the placing was
    recorded before (by the consumer of OrderPlaced that ShipOrder's field replaced)."""
    handlers = FulfilmentHandlers(ShipmentRepository(), CALENDARS, FulfilmentConfig(), clock=lambda: NOW)
    harness = HandlerHarness(db, "fulfilment-service", handlers.handler_map(), REGISTRY)
    split, old, recorded_before = uuid4(), uuid4(), uuid4()
    placed_at = NOW - timedelta(hours=3)

    def command(order_id: UUID, when: datetime | None, *warehouses: str) -> ShipOrder:
        return ShipOrder(
            order_id=order_id,
            allocations=[line("SKU-A", 1, w) for w in warehouses],
            shipping_address=ADDRESS,
            delivery_method=DeliveryMethod.STANDARD,
            placed_at=when,
        )

    async with db.transaction() as session:  # as the former consumer recorded it, with the channel
        await session.execute(
            insert(order_placements).values(order_id=recorded_before, channel="web", placed_at=placed_at)
        )
    started = datetime.now(UTC)  # the shipments are created now (their events' time)
    assert await harness.send(command(split, placed_at, "WH-BER", "WH-LON")) is Outcome.PROCESSED
    assert await harness.send(command(split, NOW, "WH-BER", "WH-LON")) is Outcome.PROCESSED, "sent again"
    assert await harness.send(command(old, None, "WH-BER")) is Outcome.PROCESSED
    assert await harness.send(command(recorded_before, NOW, "WH-BER")) is Outcome.PROCESSED

    async with db.transaction() as session:
        placings = dict(
            (
                await session.execute(
                    select(order_placements.c.order_id, order_placements.c.placed_at).where(
                        order_placements.c.order_id.in_([split, old, recorded_before])
                    )
                )
            ).all()
        )
        records = await PerformanceFacts().records(session, started, datetime.now(UTC) + timedelta(seconds=1))
    assert placings == {split: placed_at, recorded_before: placed_at}
    by_order: dict[str, list[datetime | None]] = {}
    for record in records:
        by_order.setdefault(record.facts.order_id, []).append(record.placed_at)
    assert by_order[str(split)] == [placed_at, placed_at], "both shipments of the split order"
    assert by_order[str(old)] == [None]
    assert by_order[str(recorded_before)] == [placed_at]
