"""The order_summaries projection and its rebuild, on the real PostgreSQL in a throwaway schema.

Events are recorded the way the service records them: the Order aggregate decides, the envelopes
are appended to the event store, and the projection is applied with the aggregate's status and
version after the events and the row before them (folded from the history the writer holds), in the
same transaction.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

import order_service.adapters.projection
from oms_events import Envelope, Message, default_registry
from oms_events.messages import (
    Event,
    OrderPlaced,
    OrderShipmentUpdated,
    OrderShipped,
    OrderStockReserved,
    PaymentCaptured,
    PaymentDeclined,
    Shipped,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Address, Allocation, Channel, Customer, DeliveryMethod, OrderLine, Shortage
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.outbox import outbox_table
from oms_runtime.testing import stderr_logger, throwaway_schema
from order_service.adapters.projection import (
    OrderProjection,
    Summary,
    fold,
    order_summaries,
    projection_metadata,
    rebuild,
)
from order_service.adapters.tables import metadata
from order_service.domain.order import Order
from order_service.rebuild_projection import main as rebuild_main

REGISTRY = default_registry()
STORE = EventStore()
PROJECTION = OrderProjection()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_orders", metadata, projection_metadata) as database:
        yield database


@pytest.fixture(autouse=True)
def fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logs go to this test's stderr, whatever another test did to structlog's configuration."""
    logger = stderr_logger()
    monkeypatch.setattr(order_service.adapters.projection, "log", logger)


class Recorder:
    """Records order events like the service: aggregate, event store and projection in one transaction."""

    def __init__(self, db: Database, clock_start: datetime = T0) -> None:
        self.db = db
        self.now = clock_start
        self.batches: dict[UUID, list[tuple[str, int, list[tuple[Envelope, Message]], Summary | None]]] = {}
        self.rows: dict[UUID, Summary | None] = {}

    async def load(self, order_id: UUID) -> Order:
        async with self.db.transaction() as session:
            stored = await STORE.load(session, f"order-{order_id}")
        return Order.from_history(order_id, (REGISTRY.decode(s.envelope) for s in stored))

    async def record(self, order: Order, events: Sequence[Event]) -> None:
        assert events, "the decision recorded nothing"
        envelopes = []
        for event in events:
            self.now += timedelta(minutes=1)
            envelopes.append(
                REGISTRY.wrap(event, producer="order-service").model_copy(update={"occurred_at": self.now})
            )
        async with self.db.transaction() as session:
            await STORE.append(session, f"order-{order.order_id}", "order", order.version, envelopes)
            for event in events:
                order.apply(event)
            assert order.status is not None
            batch = list(zip(envelopes, events, strict=True))
            before = self.rows.get(order.order_id)
            self.rows[order.order_id] = await PROJECTION.apply(
                session, order.order_id, order.status.value, batch, version=order.version, before=before
            )
        self.batches.setdefault(order.order_id, []).append((order.status.value, order.version, list(batch), before))


def placed_order(customer_id: str = "c-1", reference: str | None = None) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        channel=Channel.WEB,
        external_reference=reference or f"WEB-{uuid4().hex[:8]}",
        customer=Customer(customer_id=customer_id, name="Jane", email="jane@example.com"),
        lines=[
            OrderLine(sku="SKU-A", quantity=2, unit_price_minor=500),
            OrderLine(sku="SKU-B", quantity=1, unit_price_minor=1000),
        ],
        currency="EUR",
        total_minor=2000,
        shipping_address=Address(name="Jane", line1="Main 1", city="Berlin", postal_code="10115", country="DE"),
        delivery_method=DeliveryMethod.STANDARD,
    )


def shipped(order_id: UUID, warehouse: str, tracking: str) -> Shipped:
    return Shipped(
        order_id=order_id,
        shipment_id=uuid4(),
        warehouse_id=warehouse,
        carrier="DHL" if warehouse == "WH-1" else "UPS",
        tracking_number=tracking,
        tracking_url=f"https://track.example/{tracking}",
        estimated_delivery=date(2026, 3, 5),
    )


async def place(rec: Recorder, customer_id: str = "c-1") -> Order:
    placed = placed_order(customer_id)
    order = Order(placed.order_id)
    await rec.record(order, Order.place(placed).events)
    return order


async def reserve(rec: Recorder, order: Order, warehouses: Sequence[str] = ("WH-1",)) -> None:
    allocations = [Allocation(sku="SKU-A", warehouse_id=warehouses[0], quantity=2)]
    allocations.append(Allocation(sku="SKU-B", warehouse_id=warehouses[-1], quantity=1))
    reply = StockReserved(order_id=order.order_id, reservation_id=uuid4(), allocations=allocations)
    await rec.record(order, order.on_stock_reserved(reply, "tok_approve").events)


async def capture(rec: Recorder, order: Order) -> None:
    reply = PaymentCaptured(
        order_id=order.order_id, payment_id=uuid4(), amount_minor=2000, currency="EUR", gateway_reference="g"
    )
    await rec.record(order, order.on_payment_captured(reply).events)


async def ship(rec: Recorder, order: Order, warehouse: str, tracking: str) -> None:
    await rec.record(order, order.on_shipped(shipped(order.order_id, warehouse, tracking)).events)


async def decline(rec: Recorder, order: Order) -> None:
    reply = PaymentDeclined(order_id=order.order_id, payment_id=uuid4(), reason_code="insufficient_funds", reason="no")
    await rec.record(order, order.on_payment_declined(reply).events)
    released = StockReleased(order_id=order.order_id, reservation_id=order.reservation_id)
    await rec.record(order, order.on_stock_released(released).events)  # two events in one transaction


async def summary(db: Database, order_id: UUID) -> dict[str, Any] | None:
    async with db.transaction() as session:
        row = (
            (await session.execute(select(order_summaries).where(order_summaries.c.order_id == order_id)))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def all_summaries(db: Database) -> dict[UUID, dict[str, Any]]:
    async with db.transaction() as session:
        rows = (await session.execute(select(order_summaries))).mappings().all()
    return {row["order_id"]: {k: v for k, v in row.items() if k != "updated_at"} for row in rows}


async def outbox_rows(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(outbox_table)) or 0)


async def test_a_split_order_is_projected_from_placed_to_shipped(db: Database) -> None:
    rec = Recorder(db)
    order = await place(rec, "c-happy")
    row = await summary(db, order.order_id)
    assert row is not None
    placed = order.placed
    assert placed is not None
    assert (row["channel"], row["external_reference"], row["customer_id"]) == (
        "web",
        placed.external_reference,
        "c-happy",
    )
    assert (row["status"], row["total_minor"], row["currency"], row["version"]) == ("placed", 2000, "EUR", 1)
    assert row["placed_at"] == row["last_event_at"] == T0 + timedelta(minutes=1)
    assert (row["last_event_type"], row["shipment_status"], row["carrier"]) == ("OrderPlaced", "not_shipped", None)

    await reserve(rec, order, ("WH-1", "WH-2"))
    await capture(rec, order)
    row = await summary(db, order.order_id)
    assert row is not None
    assert (row["status"], row["version"], row["last_event_type"]) == ("confirmed", 3, "OrderConfirmed")
    assert row["warehouses"] == ["WH-1", "WH-2"]

    await ship(rec, order, "WH-2", "UPS-2")
    row = await summary(db, order.order_id)
    assert row is not None
    assert (row["status"], row["shipment_status"]) == ("partially_shipped", "partially_shipped")
    assert (row["carrier"], row["tracking_number"], row["tracking_url"]) == (
        "UPS",
        "UPS-2",
        "https://track.example/UPS-2",
    )

    await ship(rec, order, "WH-1", "DHL-1")
    row = await summary(db, order.order_id)
    assert row is not None
    assert (row["status"], row["shipment_status"], row["version"]) == ("shipped", "shipped", 5)
    assert (row["carrier"], row["tracking_number"], row["estimated_delivery"]) == ("DHL", "DHL-1", date(2026, 3, 5))
    assert [s["tracking_number"] for s in row["shipments"]] == ["UPS-2", "DHL-1"]
    assert row["placed_at"] == T0 + timedelta(minutes=1)
    assert row["last_event_at"] == T0 + timedelta(minutes=5)
    assert row["last_event_type"] == "OrderShipped"


async def test_rejections_are_projected(db: Database) -> None:
    rec = Recorder(db)
    out_of_stock = await place(rec, "c-rejected")
    reply = StockReservationFailed(
        order_id=out_of_stock.order_id, reason="short", shortages=[Shortage(sku="SKU-B", requested=1, available=0)]
    )
    await rec.record(out_of_stock, out_of_stock.on_stock_reservation_failed(reply).events)
    row = await summary(db, out_of_stock.order_id)
    assert row is not None
    assert (row["status"], row["version"], row["last_event_type"]) == ("rejected", 2, "OrderRejected")

    declined = await place(rec, "c-rejected")
    await reserve(rec, declined)
    await decline(rec, declined)
    row = await summary(db, declined.order_id)
    assert row is not None
    # StockReleased and OrderRejected were one batch: the row has the last of them, at version 5.
    assert (row["status"], row["version"], row["last_event_type"]) == ("rejected", 5, "OrderRejected")
    assert row["last_event_at"] == rec.now
    assert row["shipment_status"] == "not_shipped"


async def test_applying_the_same_events_again_changes_nothing(db: Database) -> None:
    rec = Recorder(db)
    order = await place(rec)
    await reserve(rec, order)
    await capture(rec, order)
    await ship(rec, order, "WH-1", "DHL-9")
    before = await summary(db, order.order_id)
    assert before is not None

    async with db.transaction() as session:
        for status, version, batch, row in rec.batches[order.order_id]:  # every batch again, in order
            await PROJECTION.apply(session, order.order_id, status, batch, version=version, before=row)
        first_status, first_version, first_batch, _ = rec.batches[order.order_id][0]  # an old one, out of order
        await PROJECTION.apply(session, order.order_id, first_status, first_batch, version=first_version, before=None)
    assert await summary(db, order.order_id) == before  # even updated_at: nothing was written


async def test_a_row_behind_the_stream_is_replaced_by_the_state_after_the_new_events(db: Database) -> None:
    rec = Recorder(db)
    order = await place(rec)
    await reserve(rec, order)
    await capture(rec, order)
    expected = await summary(db, order.order_id)
    assert expected is not None
    all_events = [pair for _, _, batch, _ in rec.batches[order.order_id] for pair in batch]
    async with db.transaction() as session:
        # The stored row fell behind (a lost write, a damaged table): version 1, the wrong warehouses.
        await session.execute(
            update(order_summaries)
            .where(order_summaries.c.order_id == order.order_id)
            .values(version=1, status="placed", last_event_type="OrderPlaced", warehouses=["WH-9"])
        )
        # The writer's base is its own fold of the stream (version 2), not the stored row.
        _, _, last_batch, base = rec.batches[order.order_id][-1]
        assert base is not None
        assert base["version"] == 2
        await PROJECTION.apply(session, order.order_id, "confirmed", last_batch, version=3, before=base)
    row = await summary(db, order.order_id)
    assert row is not None
    assert {k: v for k, v in row.items() if k != "updated_at"} == {
        k: v for k, v in expected.items() if k != "updated_at"
    }
    # A base that already holds some of the events (the whole stream given again): only the new ones count.
    overlapping = fold(None, order.order_id, "awaiting_payment", [(1, *all_events[0]), (2, *all_events[1])])
    after = PROJECTION.summary_after(order.order_id, "confirmed", all_events, version=3, before=overlapping)
    assert after is not None
    assert (after["version"], after["last_event_type"], after["warehouses"]) == (3, "OrderConfirmed", ["WH-1"])


class WarningsSeen:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def warning(self, message: str, **fields: Any) -> None:
        self.seen.append((message, fields))


async def test_a_base_behind_the_events_is_reported_as_a_gap(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(db)
    order = await place(rec)
    await reserve(rec, order)
    await capture(rec, order)
    [placed_batch, _, last_batch] = [batch for _, _, batch, _ in rec.batches[order.order_id]]
    warnings = WarningsSeen()
    monkeypatch.setattr(order_service.adapters.projection, "log", warnings)
    base = fold(None, order.order_id, "placed", [(1, *placed_batch[0])])  # version 1; the events start at 3
    after = PROJECTION.summary_after(order.order_id, "confirmed", last_batch, version=3, before=base)
    assert after is not None
    assert after["version"] == 3
    assert warnings.seen == [
        (
            "order summary has a gap; rebuild the projection",
            {"order_id": str(order.order_id), "stored_version": 1, "first_new_version": 3},
        )
    ]


async def test_events_without_a_row_or_an_order_placed_project_nothing(db: Database) -> None:
    order_id = uuid4()
    reply = StockReleased(order_id=order_id, reservation_id=None)
    envelope = REGISTRY.wrap(reply, producer="order-service")
    async with db.transaction() as session:
        assert await PROJECTION.apply(session, order_id, "placed", [(envelope, reply)], version=4, before=None) is None
        with pytest.raises(ValueError, match="too low"):
            await PROJECTION.apply(session, order_id, "placed", [(envelope, reply)], version=0, before=None)
    assert await summary(db, order_id) is None


async def test_rebuild_replays_the_store_into_the_same_rows_without_side_effects(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM events"))
        await session.execute(text("DELETE FROM order_summaries"))
    rec = Recorder(db)
    orders = []
    for i in range(7):
        order = await place(rec, f"c-rebuild-{i % 3}")
        orders.append(order)
        if i >= 1:
            await reserve(rec, order, ("WH-1", "WH-2") if i % 2 else ("WH-1",))
        if i in (2, 3, 4, 5):
            await capture(rec, order)
        if i in (3, 4):
            await ship(rec, order, "WH-1", f"T-{i}")
        if i == 6:
            await decline(rec, order)
    await ship(rec, orders[3], "WH-2", "T-3b")  # order 3 is split: shipped later, after other orders' events
    expected = await all_summaries(db)
    assert len(expected) == 7
    events_recorded = sum(order.version for order in orders)

    async with db.transaction() as session:  # damage the read model: a lost row, a wrong one
        await session.execute(order_summaries.delete().where(order_summaries.c.order_id == orders[0].order_id))
        await session.execute(
            update(order_summaries).where(order_summaries.c.order_id == orders[1].order_id).values(status="cancelled")
        )
    outbox_before = await outbox_rows(db)

    result = await rebuild(db, STORE, REGISTRY, batch_size=4)  # small batches: orders span several

    assert (result.events, result.orders, result.skipped) == (events_recorded, 7, 0)
    assert await all_summaries(db) == expected
    assert await outbox_rows(db) == outbox_before == 0
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(text("events"))) == events_recorded

    # A rebuild of a rebuilt table is the same again, and live appends after it apply on top.
    await rebuild(db, STORE, REGISTRY)
    assert await all_summaries(db) == expected
    live = await rec.load(orders[2].order_id)
    await ship(rec, live, "WH-1", "T-live")
    row = await summary(db, orders[2].order_id)
    assert row is not None
    assert (row["status"], row["tracking_number"]) == ("shipped", "T-live")


class PausingProjection(OrderProjection):
    """Holds the rebuild (and its table lock) open until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def apply(
        self,
        session: AsyncSession,
        order_id: UUID,
        status: str,
        events: Sequence[tuple[Envelope, Message]],
        *,
        version: int,
        before: Summary | None,
    ) -> Summary | None:
        self.entered.set()
        await self.release.wait()
        return await super().apply(session, order_id, status, events, version=version, before=before)


async def test_events_recorded_during_a_rebuild_are_not_lost(db: Database) -> None:
    rec = Recorder(db)
    order = await place(rec)
    await reserve(rec, order)
    pausing = PausingProjection()
    rebuilding = asyncio.create_task(rebuild(db, STORE, REGISTRY, projection=pausing))
    await asyncio.wait_for(pausing.entered.wait(), 10)
    live = asyncio.create_task(capture(rec, order))  # appends, then waits for the rebuild's table lock
    await asyncio.sleep(0.3)
    assert not live.done()
    pausing.release.set()
    await asyncio.wait_for(rebuilding, 10)
    await asyncio.wait_for(live, 10)
    row = await summary(db, order.order_id)
    assert row is not None
    assert (row["status"], row["version"], row["last_event_type"]) == ("confirmed", 3, "OrderConfirmed")


async def test_rebuild_of_an_empty_store_empties_the_table(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM events"))
    result = await rebuild(db, STORE, REGISTRY)
    assert (result.events, result.orders) == (0, 0)
    assert await all_summaries(db) == {}


def test_the_rebuild_command_refuses_a_bad_batch_size() -> None:
    with pytest.raises(SystemExit) as exited:
        rebuild_main(["--batch-size", "0"])
    assert exited.value.code == 2


def test_shipment_progress_folds_into_the_tracking_columns() -> None:
    order_id, shipment_id, other = uuid4(), uuid4(), uuid4()
    placed = OrderPlaced(
        order_id=order_id,
        channel=Channel.WEB,
        external_reference="W-1",
        customer=Customer(customer_id="c", name="Jane", email="jane@example.com"),
        lines=[OrderLine(sku="A", quantity=1, unit_price_minor=100)],
        currency="EUR",
        total_minor=100,
        shipping_address=Address(name="Jane", line1="Main 1", city="Berlin", postal_code="10115", country="DE"),
        delivery_method=DeliveryMethod.STANDARD,
    )
    events: list[Message] = [
        placed,
        OrderStockReserved(
            order_id=order_id,
            reservation_id=uuid4(),
            allocations=[
                Allocation(sku="A", warehouse_id="WH-1", quantity=1),
                Allocation(sku="A", warehouse_id="WH-2", quantity=1),
            ],
        ),
        OrderShipmentUpdated(order_id=order_id, shipment_id=shipment_id, warehouse_id="WH-1", status="created"),
        OrderShipmentUpdated(order_id=order_id, shipment_id=other, warehouse_id="WH-2", status="picking"),
        OrderShipped(
            order_id=order_id,
            shipment_id=shipment_id,
            warehouse_id="WH-1",
            carrier="DHL",
            tracking_number="0123456789",
            tracking_url="https://track.example/0123456789",
            estimated_delivery=date(2026, 3, 6),
        ),
    ]
    triples = [(v, REGISTRY.wrap(e, producer="t"), e) for v, e in enumerate(events, start=1)]
    row = fold(None, order_id, "partially_shipped", triples)
    assert row is not None
    assert row["shipment_status"] == "partially_shipped"
    assert [(s["warehouse_id"], s["status"], bool(s["shipped_at"])) for s in row["shipments"]] == [
        ("WH-1", "shipped", True),
        ("WH-2", "picking", False),
    ]
    at = datetime(2026, 3, 5, 11, tzinfo=UTC)
    later: list[Message] = [
        OrderShipmentUpdated(
            order_id=order_id,
            shipment_id=shipment_id,
            warehouse_id="WH-1",
            status="delivered",
            location="Berlin",
            reported_at=at,
        ),
        OrderShipmentUpdated(order_id=order_id, shipment_id=other, warehouse_id="WH-2", status="cancelled"),
    ]
    more = [(v, REGISTRY.wrap(e, producer="t"), e) for v, e in enumerate(later, start=6)]
    row = fold(row, order_id, "shipped", more)
    assert row is not None
    delivered = row["shipments"][0]
    assert (delivered["status"], delivered["location"], delivered["delivered_at"]) == (
        "delivered",
        "Berlin",
        at.isoformat(),
    )
    # WH-2 gave up: nothing is left to ship.
    assert row["shipment_status"] == "shipped"
