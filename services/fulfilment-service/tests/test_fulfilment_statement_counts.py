"""How many database statements fulfilment-service runs per order and per warehouse step, pinned.

A statement costs about a millisecond all in (SQLAlchemy, asyncpg, a round trip that wakes PostgreSQL),
which made statements most of fulfilment's CPU per order; these counts are its budget, so a change that
adds one fails here. Counted with `oms_runtime.testing.StatementCounter` (SQLAlchemy's statements and
the ones sent straight to asyncpg) on the real PostgreSQL, the messages driven through the runtime's
processor and the warehouse's steps through the real HTTP app. The runtime's own statements (inbox,
outbox: one each per transaction or batch) are counted apart.

Before this budget, an automatic warehouse's ShipOrder ran 8 statements (a load, then for the created
shipment and again for its four steps: the append, the view, a read of the report row and its write);
now 3: the load, one append of the five events, one write of both projections and the order's placing
time. The placing time used to come from a consumer of the orders topic of its own (one statement per
OrderPlaced, and four other order events per order read and skipped); it comes with ShipOrder now. A
polled batch of ShipOrders is 3 statements too, however many it holds.
A decision's statements go straight to asyncpg (`oms_runtime.driver`): none of them through SQLAlchemy.
"""

import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import select

from fulfilment_service.adapters.shipment_repository import ShipmentRepository
from fulfilment_service.adapters.tables import order_placements, shipment_reports, shipment_views
from fulfilment_service.domain.dispatch import DispatchCalendar, WarehouseCalendars
from fulfilment_service.domain.shipment import shipment_id_for
from fulfilment_service.entrypoints.http import create_app
from fulfilment_service.handlers import FulfilmentConfig, FulfilmentHandlers, FulfilmentOperations, WarehouseMode
from fulfilment_service.rebuild_projection import rebuild
from oms_events import ContractMessage, default_registry
from oms_events.messages import (
    CancelShipment,
    FulfilmentCancelled,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentPacked,
    ShipmentPicked,
    ShipmentPickingStarted,
    ShipOrder,
    Shipped,
)
from oms_events.values import Address, Allocation, DeliveryMethod
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.messaging import Outcome, SourceRecord
from oms_runtime.testing import HandlerHarness, StatementCounter

REGISTRY = default_registry()
TABLES = re.compile(r"\b(events|shipment_views|shipment_reports|order_placements|return_views)\b")
ADDRESS = Address(name="Jane Doe", line1="1 Example Street", city="Berlin", postal_code="10115", country="DE")
WAREHOUSE_KEY = "test-warehouse-key-0123456789"
CARRIER_KEY = "test-carrier-key-0123456789"
KEYS = (
    f'[{{"name": "wh", "key": "{WAREHOUSE_KEY}", "role": "warehouse"}},'
    f' {{"name": "dhl", "key": "{CARRIER_KEY}", "role": "carrier"}}]'
)
MANUAL = "WH-MANUAL"
PROJECTIONS = {"shipment_views", "shipment_reports", "order_placements"}
"""The one statement that writes a shipment's projections (and its order's placing time, when known)."""
PARCEL = {"weight_grams": 900, "length_mm": 400, "width_mm": 300, "height_mm": 150}


class Statements(StatementCounter):
    """The statements the engine sends, fulfilment's apart from the runtime's (inbox, outbox), and those
    of them that went through SQLAlchemy (`through_sqlalchemy()`) rather than straight to asyncpg."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, TABLES)


def handlers() -> FulfilmentHandlers:
    return FulfilmentHandlers(
        ShipmentRepository(),
        WarehouseCalendars(default=DispatchCalendar(UTC)),
        FulfilmentConfig(modes={MANUAL: WarehouseMode.MANUAL}),
        clock=lambda: datetime(2026, 3, 3, 8, 0, tzinfo=UTC),
    )


def harness(db: Database, of: FulfilmentHandlers | None = None) -> HandlerHarness:
    return HandlerHarness(db, "fulfilment-service", (of or handlers()).handler_map(), REGISTRY)


PLACED_AT = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)


def ship_order(order_id: UUID, *warehouses: str) -> ShipOrder:
    return ShipOrder(
        order_id=order_id,
        allocations=[Allocation(sku="SKU-A", warehouse_id=w, quantity=2) for w in warehouses or ("WH-AUTO",)],
        shipping_address=ADDRESS,
        delivery_method=DeliveryMethod.STANDARD,
        placed_at=PLACED_AT,
    )


def record(message: ContractMessage, offset: int) -> SourceRecord:
    value = REGISTRY.wrap(message, producer="test").to_bytes()
    return SourceRecord(message.topic, 0, offset, message.key.encode(), value)


async def rows(db: Database, order_id: UUID) -> tuple[list[Any], list[Any]]:
    """The order's rows of shipment_views and shipment_reports."""
    async with db.transaction() as session:
        views = (await session.execute(select(shipment_views).where(shipment_views.c.order_id == order_id))).all()
        reports = (await session.execute(select(shipment_reports).where(shipment_reports.c.order_id == order_id))).all()
    return list(views), list(reports)


async def test_an_automatic_shipment_is_three_statements_in_one_transaction(db: Database) -> None:
    order_id = uuid4()
    commands = harness(db)
    statements = Statements(db)
    with statements.counting():
        assert await commands.send(ship_order(order_id)) is Outcome.PROCESSED
    # The shipment's stream (none yet); its five events in one append; both projections and the placing.
    assert statements.tables() == [{"events"}, {"events"}, PROJECTIONS]
    assert (len(statements.runtime), statements.transactions) == (2, 1), "the inbox row and the outbox rows"
    assert not statements.through_sqlalchemy(), "every statement of the decision straight to asyncpg"
    assert [type(m) for m in await commands.emitted(order_id)] == [
        ShipmentCreated,
        ShipmentPickingStarted,
        ShipmentPicked,
        ShipmentPacked,
        Shipped,
    ]
    [view], [report] = await rows(db, order_id)
    assert (view.status, view.version, view.carrier, len(view.tracking_number)) == ("shipped", 5, "DHL", 10)
    assert view.lines == [{"sku": "SKU-A", "warehouse_id": "WH-AUTO", "quantity": 2}]
    assert (report.version, report.units, report.shipped_units, report.carrier) == (5, 2, 2, "DHL")
    assert report.shipped_at is not None
    assert report.promised_date == view.estimated_delivery
    async with db.transaction() as session:
        placing = (await session.execute(select(order_placements).where(order_placements.c.order_id == order_id))).one()
    assert (placing.placed_at, placing.channel) == (PLACED_AT, None)


async def test_a_batch_of_orders_is_three_statements_whatever_its_size(db: Database) -> None:
    # One load for every shipment the batch names, one append of all their events, one write of all their
    # projections (adapters/shipment_batch.py).
    orders = [uuid4() for _ in range(3)]
    commands = harness(db)
    statements = Statements(db)
    batch = [ship_order(orders[0]), ship_order(orders[1], "WH-ONE", MANUAL), ship_order(orders[2])]
    with statements.counting():
        outcomes = await commands.processor.process_batch([record(m, i) for i, m in enumerate(batch)])
    assert outcomes == [Outcome.PROCESSED] * 3
    assert statements.tables() == [{"events"}, {"events"}, PROJECTIONS]
    assert (len(statements.runtime), statements.transactions) == (2, 1)
    for order_id in (orders[0], orders[2]):
        [view], [report] = await rows(db, order_id)
        assert (view.status, report.version) == ("shipped", 5)
    views, reports = await rows(db, orders[1])
    assert sorted((v.warehouse_id, v.status, v.version) for v in views) == [
        ("WH-MANUAL", "created", 1),
        ("WH-ONE", "shipped", 5),
    ]
    assert sorted(r.version for r in reports) == [1, 5]
    async with db.transaction() as session:
        placings = (
            await session.execute(select(order_placements.c.placed_at).where(order_placements.c.order_id.in_(orders)))
        ).all()
    assert [p.placed_at for p in placings] == [PLACED_AT] * 3


async def test_a_cancel_in_a_batch_sees_the_shipments_the_batch_created_before_it(db: Database) -> None:
    # The cancel reads the order's shipments through the views: what the batch queued is written first.
    batched, alone = uuid4(), uuid4()
    commands = harness(db)
    outcomes = await commands.processor.process_batch(
        [
            record(ship_order(batched, MANUAL), 0),
            record(CancelShipment(order_id=batched, reason="customer", requested_by="ops"), 1),
        ]
    )
    assert outcomes == [Outcome.PROCESSED] * 2
    assert await commands.send(ship_order(alone, MANUAL)) is Outcome.PROCESSED
    assert (
        await commands.send(CancelShipment(order_id=alone, reason="customer", requested_by="ops")) is Outcome.PROCESSED
    )
    for order_id in (batched, alone):
        [view], [report] = await rows(db, order_id)
        assert (view.status, view.version, report.version, report.cancelled) == ("cancelled", 2, 2, True)
        assert [type(m) for m in await commands.emitted(order_id)] == [
            ShipmentCreated,
            ShipmentCancelled,
            FulfilmentCancelled,
        ]


async def test_each_warehouse_adds_an_append_and_a_projection_write(db: Database) -> None:
    order_id = uuid4()
    statements = Statements(db)
    with statements.counting():
        await harness(db).send(ship_order(order_id, "WH-ONE", "WH-TWO", MANUAL))
    # One load for the three streams; per warehouse, the append and the write (a manual one only created).
    assert statements.tables() == [{"events"}] + 3 * [{"events"}, PROJECTIONS]
    views, reports = await rows(db, order_id)
    assert sorted((v.warehouse_id, v.status) for v in views) == [
        ("WH-MANUAL", "created"),
        ("WH-ONE", "shipped"),
        ("WH-TWO", "shipped"),
    ]
    assert sorted(r.version for r in reports) == [1, 5, 5]


async def test_a_resent_ship_order_is_answered_from_one_read(db: Database) -> None:
    order_id = uuid4()
    commands = harness(db)
    await commands.send(ship_order(order_id))
    statements = Statements(db)
    with statements.counting():
        assert await commands.send(ship_order(order_id)) is Outcome.PROCESSED
    assert statements.tables() == [{"events"}]
    assert len(statements.runtime) == 2
    emitted = await commands.emitted(order_id)
    assert [type(m) for m in emitted[5:]] == [ShipmentCreated, Shipped]
    assert emitted[5:] == [emitted[0], emitted[4]]


async def test_a_cancel_reads_the_orders_shipments_in_one_statement(db: Database) -> None:
    order_id = uuid4()
    commands = harness(db)
    await commands.send(ship_order(order_id, MANUAL))
    statements = Statements(db)
    with statements.counting():
        await commands.send(CancelShipment(order_id=order_id, reason="customer cancelled", requested_by="jane"))
    assert statements.tables() == [{"shipment_views", "events"}, {"events"}, PROJECTIONS]
    assert not statements.through_sqlalchemy()
    assert [type(m) for m in (await commands.emitted(order_id))[1:]] == [ShipmentCancelled, FulfilmentCancelled]
    [view], [report] = await rows(db, order_id)
    assert (view.status, report.cancelled, report.version) == ("cancelled", True, 2)


async def test_each_warehouse_step_and_carrier_update_is_three_statements(db: Database) -> None:
    of = handlers()
    order_id = uuid4()
    await harness(db, of).send(ship_order(order_id, MANUAL))
    shipment_id = shipment_id_for(order_id, MANUAL)
    app = create_app(
        FulfilmentOperations(db, REGISTRY, of),
        ApiKeyAuthenticator.from_json(KEYS),
        modes=lambda _: WarehouseMode.MANUAL,
        carrier_secrets={},
    )
    statements = Statements(db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fulfilment") as http:
        steps = [
            (f"/shipments/{shipment_id}/picking", None),
            (f"/shipments/{shipment_id}/picks", {"lines": [{"sku": "SKU-A", "quantity": 1}]}),
            (f"/shipments/{shipment_id}/pack", {"parcels": [PARCEL]}),
            (f"/shipments/{shipment_id}/ship", None),
        ]
        for path, body in steps:
            with statements.counting():
                response = await http.post(path, json=body, headers={"X-API-Key": WAREHOUSE_KEY})
            assert response.status_code == 200, response.text
            # The stream; the append; both projections.
            assert statements.tables() == [{"events"}, {"events"}, PROJECTIONS], path
            assert (len(statements.runtime), statements.transactions) == (1, 1), "the outbox rows"
        update = {
            "event_id": "dhl-1",
            "tracking_number": response.json()["tracking_number"],
            "status": "delivered",
            "occurred_at": "2026-03-05T11:02:00Z",
        }
        with statements.counting():
            delivered = await http.post("/carriers/DHL/updates", json=update, headers={"X-API-Key": CARRIER_KEY})
        assert delivered.status_code == 200, delivered.text
        # The stream found by its tracking number, in the same statement; the append; both projections.
        assert statements.tables() == [{"shipment_views", "events"}, {"events"}, PROJECTIONS]
        assert not statements.through_sqlalchemy()
    [view], [report] = await rows(db, order_id)
    assert (view.status, view.version) == ("delivered", 6)
    assert (report.version, report.short_units, report.shipped_units) == (6, 1, 1)
    assert report.delivered_at == datetime(2026, 3, 5, 11, 2, tzinfo=UTC)


async def test_the_rebuild_writes_each_shipment_in_one_statement(db: Database) -> None:
    order_id = uuid4()
    await harness(db).send(ship_order(order_id))
    before = await rows(db, order_id)
    statements = Statements(db)
    with statements.counting():
        result = await rebuild(db, REGISTRY)
    views = [s for s in statements.ours if "INSERT INTO shipment_views" in s]
    reports = [s for s in statements.ours if "INSERT INTO shipment_reports" in s]
    assert len(views) == result.shipments, "one write per shipment"
    assert views == reports, "both projections of a shipment in the same statement"
    after = await rows(db, order_id)
    assert [(v.status, v.version, v.tracking_number) for v in after[0]] == [
        (v.status, v.version, v.tracking_number) for v in before[0]
    ]
    assert after[1] == before[1]


async def test_a_resent_ship_order_in_the_same_batch_is_answered_from_the_first_ones_writes(db: Database) -> None:
    # The second command's load runs in the batch's transaction after the first one's append: it finds the
    # shipment the first one made, creates nothing and answers again.
    order_id = uuid4()
    commands = harness(db)
    outcomes = await commands.processor.process_batch(
        [record(ship_order(order_id), 1), record(ship_order(order_id), 2)]
    )
    assert outcomes == [Outcome.PROCESSED] * 2
    emitted = await commands.emitted(order_id)
    assert [type(m) for m in emitted[5:]] == [ShipmentCreated, Shipped]
    assert await commands.stream_length(f"shipment-{shipment_id_for(order_id, 'WH-AUTO')}") == 5
    [view], [report] = await rows(db, order_id)
    assert (view.version, report.version) == (5, 5)
