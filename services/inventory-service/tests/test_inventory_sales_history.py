"""The sales history on the real PostgreSQL: recorded once per order, by the day it was placed; the demand
consumer through the runtime's processor (inbox, transaction); and a rebuild from a real Kafka topic."""

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select

from inventory_service.adapters.planning_tables import daily_demand, demand_orders
from inventory_service.adapters.sales_history import SalesHistory
from inventory_service.adapters.tables import metadata
from inventory_service.entrypoints.sales_consumer import DEMAND_GROUP, DemandRecorder, rebuild_daily_demand
from oms_events import Message, default_registry
from oms_events.messages import OrderConfirmed, OrderPlaced
from oms_events.values import Address, Channel, Customer, DeliveryMethod, OrderLine
from oms_runtime.db import Database
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.messaging import Outcome, SourceRecord
from oms_runtime.testing import HandlerHarness, StatementCounter, throwaway_schema

# The broker the environment names, with its security settings (oms_runtime.kafka_connection).
KAFKA = KafkaConnection.from_env()
REGISTRY = default_registry()
HISTORY = SalesHistory()
DAY = date(2026, 3, 10)


@pytest_asyncio.fixture
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_demand", metadata) as database:
        yield database


def placed(lines: list[tuple[str, int]], order_id: UUID | None = None) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id or uuid4(),
        channel=Channel.WEB,
        external_reference=f"REF-{uuid4().hex[:8]}",
        customer=Customer(customer_id="c-1", name="Jane", email="jane@example.com"),
        lines=[OrderLine(sku=sku, quantity=qty, unit_price_minor=500) for sku, qty in lines],
        currency="EUR",
        total_minor=500 * sum(q for _, q in lines),
        shipping_address=Address(name="Jane", line1="Main 1", city="Berlin", postal_code="10115", country="DE"),
        delivery_method=DeliveryMethod.STANDARD,
    )


def envelope_bytes(message: Message, at: datetime) -> bytes:
    return REGISTRY.wrap(message, producer="order-service").model_copy(update={"occurred_at": at}).to_bytes()


async def units(db: Database) -> dict[tuple[str, date], int]:
    async with db.transaction() as session:
        rows = await session.execute(select(daily_demand.c.sku, daily_demand.c.day, daily_demand.c.units))
        return {(sku, day): n for sku, day, n in rows}


async def test_an_order_is_counted_once_and_its_lines_of_one_sku_are_summed(db: Database) -> None:
    order_id = uuid4()
    async with db.transaction() as session:
        assert await HISTORY.record_order(session, order_id, DAY, [("SKU-A", 2), ("SKU-B", 1), ("SKU-A", 3)])
    async with db.transaction() as session:
        assert not await HISTORY.record_order(session, order_id, DAY, [("SKU-A", 2)])
        assert await HISTORY.record_order(session, uuid4(), DAY, [("SKU-A", 4)])
        assert await HISTORY.record_order(session, uuid4(), DAY + timedelta(days=1), [("SKU-B", 7)])

    assert await units(db) == {("SKU-A", DAY): 9, ("SKU-B", DAY): 1, ("SKU-B", DAY + timedelta(days=1)): 7}


async def test_history_reads_one_sku_or_many_within_the_days_asked(db: Database) -> None:
    async with db.transaction() as session:
        for offset, sku, qty in [(0, "SKU-A", 1), (1, "SKU-A", 2), (5, "SKU-A", 3), (1, "SKU-B", 4), (9, "SKU-C", 5)]:
            await HISTORY.record_order(session, uuid4(), DAY + timedelta(days=offset), [(sku, qty)])

    async with db.transaction() as session:
        one = await HISTORY.history(session, "SKU-A", DAY + timedelta(days=1), DAY + timedelta(days=5))
        many = await HISTORY.histories(session, DAY, DAY + timedelta(days=5))
        chosen = await HISTORY.histories(session, DAY, DAY + timedelta(days=9), skus=["SKU-B", "SKU-C"])

    assert one == {DAY + timedelta(days=1): 2, DAY + timedelta(days=5): 3}
    assert many == {
        "SKU-A": {DAY: 1, DAY + timedelta(days=1): 2, DAY + timedelta(days=5): 3},
        "SKU-B": {DAY + timedelta(days=1): 4},
    }
    assert chosen == {"SKU-B": {DAY + timedelta(days=1): 4}, "SKU-C": {DAY + timedelta(days=9): 5}}


async def test_the_consumer_records_demand_by_the_day_the_order_was_placed_once(db: Database) -> None:
    harness = HandlerHarness(db, DEMAND_GROUP, DemandRecorder(HISTORY).handler_map())
    late_evening = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    order = placed([("SKU-A", 2), ("SKU-B", 1)])
    raw = envelope_bytes(order, late_evening)

    assert await harness.send(order, raw=raw) is Outcome.PROCESSED
    assert await harness.send(order, raw=raw) is Outcome.DUPLICATE
    # The same order in another envelope (a new message id): the inbox lets it through, the ledger not.
    assert await harness.send(order, raw=envelope_bytes(order, late_evening)) is Outcome.PROCESSED
    # 00:30 in Berlin is still the 10th in UTC.
    berlin_after_midnight = datetime.fromisoformat("2026-03-11T00:30:00+01:00")
    assert await harness.send(placed([("SKU-A", 5)]), raw=envelope_bytes(placed([("SKU-A", 5)]), berlin_after_midnight))
    next_day = placed([("SKU-A", 1)])
    assert await harness.send(next_day, raw=envelope_bytes(next_day, datetime(2026, 3, 11, 0, 1, tzinfo=UTC)))
    # Other order events are not demand.
    confirmed = OrderConfirmed(order_id=order.order_id, payment_id=uuid4(), amount_minor=1500, currency="EUR")
    assert await harness.send(confirmed) is Outcome.SKIPPED

    assert await units(db) == {("SKU-A", DAY): 7, ("SKU-B", DAY): 1, ("SKU-A", DAY + timedelta(days=1)): 1}
    assert harness.dead_letters.sent == []


async def test_a_batch_of_orders_is_recorded_in_one_statement_as_one_by_one(db: Database) -> None:
    harness = HandlerHarness(db, DEMAND_GROUP, DemandRecorder(HISTORY).handler_map())
    evening, next_morning = datetime(2026, 3, 10, 23, 30, tzinfo=UTC), datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
    counted_before = placed([("SKU-B", 4)])
    async with db.transaction() as session:
        assert await HISTORY.record_order(session, counted_before.order_id, DAY, [("SKU-B", 4)])
    first = placed([("SKU-A", 2), ("SKU-B", 1), ("SKU-A", 1)])
    orders = [
        (first, evening),
        (placed([("SKU-A", 5)]), evening),
        (placed([("SKU-A", 1)]), next_morning),
        (first, next_morning),  # the same order in another message: counted once, on its first day
        (counted_before, evening),  # counted before this batch: nothing more
    ]
    records = [
        SourceRecord(order.topic, 0, offset, order.key.encode(), envelope_bytes(order, at))
        for offset, (order, at) in enumerate(orders)
    ]
    statements = StatementCounter(db, re.compile(r"\b(demand_orders|daily_demand)\b"))
    with statements.counting():
        assert await harness.processor.process_batch(records) == [Outcome.PROCESSED] * 5
    assert statements.tables() == [{"demand_orders", "daily_demand"}]
    assert statements.transactions == 1
    assert await units(db) == {("SKU-A", DAY): 8, ("SKU-B", DAY): 5, ("SKU-A", DAY + timedelta(days=1)): 1}


async def test_a_rebuild_replaces_the_history_with_a_replay_of_the_topic(db: Database) -> None:
    topic = f"test.demand.{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**KAFKA.client_args())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        first, second = placed([("SKU-A", 2)]), placed([("SKU-A", 1), ("SKU-B", 4)])
        records = [
            envelope_bytes(first, datetime(2026, 3, 9, 12, tzinfo=UTC)),
            envelope_bytes(second, datetime(2026, 3, 10, 8, tzinfo=UTC)),
            # A redelivery of the first order in a new envelope, another event type, and poison.
            envelope_bytes(first, datetime(2026, 3, 9, 12, tzinfo=UTC)),
            envelope_bytes(
                OrderConfirmed(order_id=second.order_id, payment_id=uuid4(), amount_minor=1, currency="EUR"),
                datetime.now(UTC),
            ),
            b"{not json",
        ]
        producer = AIOKafkaProducer(**KAFKA.client_args())
        await producer.start()
        try:
            for i, value in enumerate(records):
                await producer.send_and_wait(topic, value=value, key=str(i).encode(), partition=i % 2)
        finally:
            await producer.stop()
        # What a rebuild must forget: a count that is wrong (e.g. from a bug since fixed).
        async with db.transaction() as session:
            await HISTORY.record_order(session, uuid4(), DAY, [("SKU-WRONG", 99)])

        report = await rebuild_daily_demand(db, KAFKA, topic=topic)
    finally:
        await admin.delete_topics([topic])
        await admin.close()

    assert (report.records, report.orders, report.unreadable) == (5, 2, 1)
    assert await units(db) == {
        ("SKU-A", date(2026, 3, 9)): 2,
        ("SKU-A", date(2026, 3, 10)): 1,
        ("SKU-B", date(2026, 3, 10)): 4,
    }
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(demand_orders)) == 2
