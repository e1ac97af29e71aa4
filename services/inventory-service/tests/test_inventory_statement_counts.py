"""How many database statements inventory-service runs per order on the happy path, pinned.

A statement costs about a millisecond all in (SQLAlchemy, asyncpg, a round trip, PostgreSQL), which made
statements most of inventory-service's CPU per order; these counts are its budget, so a change that adds
one fails here. Counted with a `before_cursor_execute` listener on the real PostgreSQL, every message
driven through the runtime's processor the way the service's consumers drive it. The runtime's own
statements (inbox, outbox: one each per transaction or batch) are counted apart.

Before this budget, an order cost 30 statements (reserve 12, paid 2, shipped 11, two stock events for the
view 2, demand 3); now 14 (reserve 4, paid 2, shipped 4, view 2, demand 2). Every one of the service's
statements on these paths goes straight to asyncpg (`oms_runtime.driver.fetch_in_transaction`: about
0.1 ms of Python against 0.5 ms through SQLAlchemy's session), which `Statements.through_sqlalchemy`
pins: a statement moved back to the session fails here too.
"""

import os
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from uuid import uuid4

import pytest
import pytest_asyncio
from inventory_kit import BERLIN, LONDON, REGISTRY, Kit, address, inventory_kit, reserve
from redis.asyncio import Redis
from sqlalchemy import select

from inventory_service.adapters.availability_view import AvailabilityView
from inventory_service.adapters.planning_tables import daily_demand
from inventory_service.adapters.sales_history import SalesHistory
from inventory_service.adapters.stock_statements import StockWrites
from inventory_service.adapters.tables import reservations
from inventory_service.availability import AvailabilityProjection
from inventory_service.domain.replenishment import ReplenishmentPolicy
from inventory_service.entrypoints.sales_consumer import DemandRecorder
from inventory_service.ledger import StockChange
from oms_events import ContractMessage
from oms_events.messages import (
    OrderPlaced,
    PaymentCaptured,
    PurchaseOrderRaised,
    ReleaseStock,
    ReservationExpired,
    Shipped,
    StockLevelChanged,
    StockReleased,
    StockReserved,
)
from oms_events.values import Channel, Customer, DeliveryMethod, OrderLine
from oms_runtime.db import Database
from oms_runtime.eventstore import ConcurrencyError
from oms_runtime.messaging import Outcome, SourceRecord
from oms_runtime.testing import HandlerHarness, StatementCounter
from oms_runtime.use_cases import local_context

TABLES = re.compile(
    r"\b(events|stock_levels|warehouses|replenishment_policies|reservations|reservation_lines|purchase_orders|"
    r"demand_orders|daily_demand)\b"
)


@pytest_asyncio.fixture
async def kit() -> AsyncIterator[Kit]:
    async with inventory_kit(ttl=timedelta(minutes=30)) as k:
        yield k


class Statements(StatementCounter):
    """The statements the engine sends, inventory-service's apart from the runtime's (inbox, outbox)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, TABLES)


def shipped(order_id: object, warehouse_id: str) -> Shipped:
    return Shipped(
        order_id=order_id,
        shipment_id=uuid4(),
        warehouse_id=warehouse_id,
        carrier="DHL",
        tracking_number="T1",
        tracking_url="https://example.com/T1",
        estimated_delivery=date(2026, 1, 2),
    )


def paid(order_id: object) -> PaymentCaptured:
    return PaymentCaptured(
        order_id=order_id, payment_id=uuid4(), amount_minor=100, currency="EUR", gateway_reference="g"
    )


def placed(order_id: object) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        channel=Channel.WEB,
        external_reference=f"W-{uuid4().hex[:8]}",
        customer=Customer(customer_id="c-1", name="Jane", email="jane@example.com"),
        lines=[
            OrderLine(sku="A", quantity=2, unit_price_minor=1000),
            OrderLine(sku="B", quantity=1, unit_price_minor=5),
        ],
        currency="EUR",
        total_minor=2005,
        shipping_address=address(),
        delivery_method=DeliveryMethod.STANDARD,
    )


LOAD = {"reservations", "reservation_lines", "events", "stock_levels", "warehouses", "replenishment_policies"}
"""The one read of a decision: the reservation, its lines, its stream's version, the locked levels with
their warehouses' coordinates and policies."""


async def test_a_reservation_and_its_shipment_are_two_statements_each(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 5, "WH-LON": 5})
    await kit.stock("B", {"WH-BER": 5, "WH-LON": 5})
    order_id = uuid4()
    statements = Statements(kit.db)

    with statements.counting():
        assert await kit.harness.send(reserve(order_id, ("A", 2), ("B", 1), to=address("DE"))) is Outcome.PROCESSED
    # The read (levels locked), then the levels, their events, the reservation, its lines and its event.
    assert statements.tables() == [LOAD, {"stock_levels", "events", "reservations", "reservation_lines"}]
    assert statements.counts() == (2, 2, 1), "the inbox row and the outbox rows, in the same transaction"
    assert statements.through_sqlalchemy() == []
    answer = (await kit.answers(order_id))[-1]
    assert isinstance(answer, StockReserved)
    assert {(a.sku, a.warehouse_id, a.quantity) for a in answer.allocations} == {("A", "WH-BER", 2), ("B", "WH-BER", 1)}

    with statements.counting():
        assert await kit.harness.send(paid(order_id)) is Outcome.PROCESSED
    assert statements.tables() == [{"reservations"}]
    assert statements.counts() == (1, 1, 1), "the inbox row; nothing to publish"
    assert statements.through_sqlalchemy() == []

    with statements.counting():
        assert await kit.harness.send(shipped(order_id, "WH-BER")) is Outcome.PROCESSED
    assert statements.tables() == [LOAD, {"stock_levels", "events", "reservation_lines", "reservations"}]
    assert statements.counts() == (2, 2, 1)
    assert statements.through_sqlalchemy() == []

    levels = await kit.levels("A")
    assert (levels["WH-BER"].on_hand, levels["WH-BER"].reserved) == (3, 0)
    assert await kit.status(order_id) == "committed"
    changes = [m for m in await kit.sent("A") if isinstance(m, StockLevelChanged)]
    assert [(c.cause, c.on_hand, c.reserved, c.sequence) for c in changes] == [
        ("reservation", 5, 2, 1),
        ("shipment", 3, 0, 2),
    ]


async def test_a_split_order_commits_with_its_last_warehouse_in_the_same_two_statements(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 1, "WH-LON": 1}, (BERLIN, LONDON))
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2), to=address("DE")))
    statements = Statements(kit.db)
    with statements.counting():
        await kit.harness.send(shipped(order_id, "WH-BER"))
    assert statements.counts() == (2, 2, 1)
    assert await kit.status(order_id) == "reserved", "London has not shipped yet"
    with statements.counting():
        await kit.harness.send(shipped(order_id, "WH-LON"))
    assert statements.counts() == (2, 2, 1)
    assert await kit.status(order_id) == "committed"
    assert {wh: (lvl.on_hand, lvl.reserved) for wh, lvl in (await kit.levels("A")).items()} == {
        "WH-BER": (0, 0),
        "WH-LON": (0, 0),
    }


async def test_a_level_at_its_reorder_point_adds_only_the_purchase_order(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 5})
    async with kit.db.transaction() as session:
        await kit.repo.put_policy(session, ReplenishmentPolicy("A", "WH-BER", 3, 10, None, 2))
    order_id = uuid4()
    statements = Statements(kit.db)
    with statements.counting():
        await kit.harness.send(reserve(order_id, ("A", 2)))
    # The policy came with the locked level: the purchase order is the only statement added.
    assert statements.tables() == [
        LOAD,
        {"stock_levels", "events", "reservations", "reservation_lines"},
        {"purchase_orders"},
    ]
    [raised] = [m for m in await kit.sent("A") if isinstance(m, PurchaseOrderRaised)]
    assert (raised.quantity, raised.available) == (10, 3)


async def test_the_view_and_the_demand_are_one_statement_each_beside_the_inbox(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 5})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2)))
    [changed] = [m for m in await kit.sent("A") if isinstance(m, StockLevelChanged)]

    redis = Redis.from_url(_redis_url())
    view = AvailabilityView(redis, f"test:statements:{uuid4().hex}:")
    projection = HandlerHarness(kit.db, "inventory-service-availability", AvailabilityProjection(view).handler_map())
    statements = Statements(kit.db)
    try:
        with statements.counting():
            assert await projection.send(changed) is Outcome.PROCESSED
        assert statements.counts() == (0, 1, 1), "the view is in Redis: only the inbox row"
        assert [(w.warehouse_id, w.available) for w in await view.availability("A")] == [("WH-BER", 3)]
        await view.clear()
    finally:
        await redis.aclose()

    demand = HandlerHarness(kit.db, "inventory-service-demand", DemandRecorder(SalesHistory()).handler_map())
    with statements.counting():
        assert await demand.send(placed(order_id)) is Outcome.PROCESSED
    assert statements.tables() == [{"demand_orders", "daily_demand"}]
    assert statements.counts() == (1, 1, 1)
    assert statements.through_sqlalchemy() == []
    with statements.counting():
        await demand.send(placed(order_id))  # another message, the same order: counted once
    assert statements.counts() == (1, 1, 1)
    async with kit.db.transaction() as session:
        rows = (await session.execute(select(daily_demand.c.sku, daily_demand.c.units))).all()
    units = {sku: n for sku, n in rows}
    assert units == {"A": 2, "B": 1}


async def test_a_batch_of_reservations_adds_one_inbox_and_one_outbox_statement(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 10})
    orders = [uuid4() for _ in range(3)]
    records = [record(reserve(order_id, ("A", 1)), offset) for offset, order_id in enumerate(orders)]
    statements = Statements(kit.db)
    with statements.counting():
        outcomes = await kit.harness.processor.process_batch(records)
    assert outcomes == [Outcome.PROCESSED] * 3
    assert statements.counts() == (6, 2, 1)
    # Each reservation started from the one before it in the same transaction.
    assert (await kit.levels("A"))["WH-BER"].reserved == 3
    changes = [m for m in await kit.sent("A") if isinstance(m, StockLevelChanged)]
    assert [c.sequence for c in changes] == [1, 2, 3]


async def test_a_batch_of_payments_stops_every_expiry_in_one_statement(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 10})
    orders = [uuid4() for _ in range(3)]
    for order_id in orders:
        await kit.harness.send(reserve(order_id, ("A", 1)))
    # The first order ships in the same batch, before its payment: it is committed, and stays so.
    batch = [shipped(orders[0], "WH-BER"), *(paid(o) for o in orders)]
    statements = Statements(kit.db)
    with statements.counting():
        outcomes = await kit.harness.processor.process_batch([record(m, i) for i, m in enumerate(batch)])
    assert outcomes == [Outcome.PROCESSED] * 4
    assert statements.tables() == [
        LOAD,
        {"stock_levels", "events", "reservation_lines", "reservations"},
        {"reservations"},
    ]
    async with kit.db.transaction() as session:
        rows = (
            await session.execute(
                select(reservations.c.order_id, reservations.c.status, reservations.c.expires_at).where(
                    reservations.c.order_id.in_(orders)
                )
            )
        ).all()
    found = {order_id: (status, expires_at) for order_id, status, expires_at in rows}
    assert found[orders[0]][0] == "committed"
    assert [found[o] for o in orders[1:]] == [("reserved", None)] * 2, "paid: no expiry"


async def test_a_batch_of_level_changes_writes_the_newest_of_each_level_in_one_round_trip(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 10, "WH-LON": 10})
    for _ in range(3):
        await kit.harness.send(reserve(uuid4(), ("A", 1), to=address("DE")))
    changes = [m for m in await kit.sent("A") if isinstance(m, StockLevelChanged)]
    assert [(c.warehouse_id, c.sequence) for c in changes] == [("WH-BER", 1), ("WH-BER", 2), ("WH-BER", 3)]
    redis = Redis.from_url(_redis_url())
    view = AvailabilityView(redis, f"test:batch:{uuid4().hex}:")
    projection = HandlerHarness(kit.db, "inventory-service-availability", AvailabilityProjection(view).handler_map())
    sent: list[int] = []
    execute = type(redis.pipeline()).execute

    async def counted(self: object, *args: object, **kwargs: object) -> object:
        sent.append(1)
        return await execute(self, *args, **kwargs)  # type: ignore[arg-type]

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(type(redis.pipeline()), "execute", counted)
            # Out of order within the batch, and the newest first: the view ends at the newest.
            batch = [changes[2], changes[0], changes[1]]
            outcomes = await projection.processor.process_batch([record(m, 100 + i) for i, m in enumerate(batch)])
        assert outcomes == [Outcome.PROCESSED] * 3
        assert sent == [1], "one pipeline for the batch"
        assert [(w.warehouse_id, w.reserved, w.sequence) for w in await view.availability("A")] == [("WH-BER", 3, 3)]
        # A batch older than the view changes nothing.
        assert (
            await projection.processor.process_batch([record(changes[0], 200), record(changes[1], 201)])
            == [Outcome.PROCESSED] * 2
        )
        assert [(w.warehouse_id, w.reserved, w.sequence) for w in await view.availability("A")] == [("WH-BER", 3, 3)]
        await view.clear()
    finally:
        await redis.aclose()


async def test_a_release_is_the_read_and_one_write(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 5})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2)))
    statements = Statements(kit.db)
    with statements.counting():
        assert await kit.harness.send(ReleaseStock(order_id=order_id, reason="payment declined")) is Outcome.PROCESSED
    # The read, the writes (the level, its event, the reservation's status and its event), then the
    # search for backorders that wait for the units given back.
    assert statements.tables() == [
        LOAD,
        {"stock_levels", "events", "reservations", "reservation_lines"},
        {"reservations"},
    ]
    assert statements.counts() == (3, 2, 1)
    assert statements.through_sqlalchemy() == []
    assert (await kit.levels("A"))["WH-BER"].reserved == 0
    assert isinstance((await kit.answers(order_id))[-1], StockReleased)


async def test_an_expiry_is_the_lock_the_read_and_one_write(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 5})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2)))
    kit.clock.advance(timedelta(hours=1))
    statements = Statements(kit.db)
    with statements.counting():
        assert await kit.expirer().sweep() == 1
    # The overdue reservations (a transaction of its own), then per reservation: its lock (SKIP LOCKED),
    # the read, the writes, and the search for waiting backorders.
    assert statements.tables() == [
        {"reservations"},
        {"reservations"},
        LOAD,
        {"stock_levels", "events", "reservations", "reservation_lines"},
        {"reservations"},
    ]
    assert statements.counts() == (5, 1, 2), "the outbox of the expiry's transaction"
    assert statements.through_sqlalchemy() == []
    assert await kit.status(order_id) == "expired"
    assert (await kit.levels("A"))["WH-BER"].reserved == 0
    assert any(isinstance(m, ReservationExpired) for m in await kit.answers(order_id))


def record(message: ContractMessage, offset: int) -> SourceRecord:
    value = REGISTRY.wrap(message, producer="test").to_bytes()
    return SourceRecord(message.topic, 0, offset, message.key.encode(), value)


def _redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_an_event_at_a_taken_stream_version_gives_the_decision_up(kit: Kit) -> None:
    """The reservation stream's version is read from the load's snapshot: when another transaction took
    the next version meanwhile, the write counts its event out and nothing of the decision stays."""
    await kit.stock("A", {"WH-BER": 5})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2)))
    with pytest.raises(ConcurrencyError):
        async with kit.db.transaction() as session:
            ctx = local_context(session, "inventory-service", REGISTRY)
            stock = await kit.ledger.order_stock(session, order_id)
            assert stock.reservation is not None
            writes = StockWrites()
            await kit.ledger.stage_picks(
                ctx,
                writes,
                stock,
                stock.unshipped(),
                lambda p: StockChange(p.sku, p.warehouse_id, "release", reserved_change=-p.quantity),
            )
            writes.set_status(order_id, "reserved", "released", None)
            # As if the stream had one event fewer: its next version is taken.
            stale = stock.stream_version - 1
            await kit.ledger.stage_reservation_event(
                ctx, writes, order_id, stale, StockReleased(order_id=order_id, reservation_id=None)
            )
            await writes.flush(session)
    assert (await kit.levels("A"))["WH-BER"].reserved == 2, "the level's change went with the event"
    assert await kit.status(order_id) == "reserved"
