"""Saga deadlines on the real PostgreSQL: overdue commands are re-sent, then compensated or parked,
the state lives in the database (a new sweeper, as after a restart, carries on), and an operator's
retry puts a parked order back on its way."""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest_asyncio
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from order_test_builders import placed_order
from sqlalchemy import select

from oms_events import Message, default_registry
from oms_events.messages import (
    CapturePayment,
    Command,
    PaymentCaptured,
    PaymentRefunded,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    ShipmentCreated,
    ShipmentPicked,
    Shipped,
    StockReserved,
)
from oms_events.values import Allocation
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.outbox import outbox_table
from oms_runtime.testing import HandlerHarness, throwaway_schema
from oms_runtime.tracing import configure_tracing, tracer
from order_service.adapters.order_repository import OrderRepository
from order_service.adapters.projection import OrderProjection, projection_metadata
from order_service.adapters.tables import metadata, saga_steps
from order_service.domain.order import Order, OrderStatus
from order_service.handlers import DeadlineSweeper, OrderCommands, OrderPlacement, OrderSaga

REGISTRY = default_registry()
STEP = timedelta(seconds=5)


@pytest_asyncio.fixture
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_deadlines", metadata, projection_metadata) as database:
        yield database


def repository() -> OrderRepository:
    return OrderRepository(EventStore(), REGISTRY, STEP, OrderProjection())


def sweeper(db: Database) -> DeadlineSweeper:
    """A new sweeper each time: nothing is remembered in memory between sweeps, as after a restart."""
    return DeadlineSweeper(db, repository(), REGISTRY, step_timeout=STEP, max_attempts=2, interval_s=60)


class Clock:
    """Time as the sweeper sees it: moved on by the tests instead of slept through, so that a busy machine
    can neither make a step due early nor late."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def advance(self, by: timedelta) -> datetime:
        self.now = max(self.now, datetime.now(UTC)) + by
        return self.now


CLOCK = Clock()


async def sweep_when_due(db: Database, waits: int = 1) -> int:
    return await sweeper(db).sweep(now=CLOCK.advance(STEP * (waits + 1) + timedelta(milliseconds=50)))


async def order(db: Database, order_id: UUID) -> Order:
    async with db.transaction() as session:
        return await repository().load(session, order_id)


async def saga_row(db: Database, order_id: UUID) -> dict[str, Any] | None:
    async with db.transaction() as session:
        row = (await session.execute(select(saga_steps).where(saga_steps.c.order_id == order_id))).mappings().first()
        return dict(row) if row else None


async def commands(harness: HandlerHarness, order_id: UUID) -> list[type[Message]]:
    """The commands sent for the order, in order (the outbox also holds its events)."""
    return [type(m) for m in await harness.emitted(order_id) if isinstance(m, Command)]


async def place(db: Database) -> UUID:
    placed = placed_order()
    await OrderPlacement(db, repository(), REGISTRY).place(placed, "tok_approve")
    return placed.order_id


async def test_no_reply_to_the_reservation_is_re_sent_then_compensated(db: Database) -> None:
    harness = HandlerHarness(db, "order-service", OrderSaga(repository()).handler_map())
    order_id = await place(db)
    assert await sweeper(db).sweep() == 0, "nothing is due before the deadline"

    assert await sweep_when_due(db) == 1
    assert (await saga_row(db, order_id) or {})["attempts"] == 2
    assert await commands(harness, order_id) == [ReserveStock, ReserveStock]
    assert (await order(db, order_id)).status is OrderStatus.PLACED

    # The second send went unanswered too: release whatever may have been reserved, then reject.
    assert await sweep_when_due(db, waits=2) == 1
    assert (await order(db, order_id)).status is OrderStatus.RELEASING_STOCK
    emitted = await commands(harness, order_id)
    assert emitted[-1] is ReleaseStock
    assert (await saga_row(db, order_id) or {})["command_type"] == "ReleaseStock"


async def test_an_unknown_capture_outcome_parks_the_order_until_an_operator_retries(db: Database) -> None:
    saga = OrderSaga(repository())
    harness = HandlerHarness(db, "order-service", saga.handler_map())
    order_id = await place(db)
    reserved = StockReserved(
        order_id=order_id,
        reservation_id=uuid4(),
        allocations=[Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2)],
    )
    await harness.send(reserved)
    assert (await order(db, order_id)).status is OrderStatus.AWAITING_PAYMENT

    await sweep_when_due(db)
    await sweep_when_due(db, waits=2)
    parked = await order(db, order_id)
    assert parked.status is OrderStatus.NEEDS_ATTENTION
    assert "payment may or may not have been captured" in (parked.attention_reason or "")
    row = await saga_row(db, order_id)
    assert row is not None
    assert row["state"] == "parked"
    captures_before = (await commands(harness, order_id)).count(CapturePayment)
    assert captures_before == 2

    # Parked means parked: no more automatic re-sends, however long it waits.
    assert await sweep_when_due(db, waits=3) == 0
    assert (await commands(harness, order_id)).count(CapturePayment) == captures_before

    await OrderCommands(db, repository(), REGISTRY).operator_action(
        order_id, "retry", "ops-ana", "payment-service is back"
    )
    assert (await order(db, order_id)).status is OrderStatus.AWAITING_PAYMENT
    assert (await commands(harness, order_id)).count(CapturePayment) == captures_before + 1
    row = await saga_row(db, order_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("waiting", 1)
    timeline = [type(e).__name__ for e in await harness_history(db, order_id)]
    assert timeline[-3:] == ["OrderStepTimedOut", "OrderNeedsAttention", "OrderOperatorActionTaken"]


async def harness_history(db: Database, order_id: UUID) -> list[Message]:
    async with db.transaction() as session:
        stored = await repository().history(session, order_id)
    return [REGISTRY.decode(s.envelope) for s in stored]


async def test_a_re_sent_command_starts_a_trace_of_its_own_that_names_the_order(db: Database) -> None:
    spans = InMemorySpanExporter()
    configure_tracing("order-service").add_span_processor(SimpleSpanProcessor(spans))
    harness = HandlerHarness(db, "order-service", OrderSaga(repository()).handler_map())
    order_id = await place(db)

    with tracer.start_as_current_span("unrelated work that happens to be current"):
        assert await sweep_when_due(db) == 1

    [span] = [s for s in spans.get_finished_spans() if s.name == "ReserveStock overdue"]
    assert span.parent is None, "a root span: the saga row keeps no trace to continue"
    assert span.attributes is not None
    assert span.attributes["oms.order_id"] == str(order_id)
    assert span.attributes["oms.saga.command"] == "ReserveStock"
    async with db.transaction() as session:
        rows = (await session.execute(select(outbox_table.c.value, outbox_table.c.headers))).all()
    re_sent = [
        (envelope, headers)
        for envelope, headers in ((REGISTRY.parse_envelope(value), headers) for value, headers in rows)
        if envelope.type == "ReserveStock" and envelope.correlation_id == str(order_id)
    ]
    assert len(re_sent) == 2, "placed, then re-sent"
    [(envelope, headers)] = [(e, h) for e, h in re_sent if e.trace_context.traceparent]
    assert envelope.trace_context.traceparent is not None
    assert envelope.trace_context.traceparent.split("-")[1] == format(span.context.trace_id, "032x")
    assert headers["traceparent"] == envelope.trace_context.traceparent
    assert await commands(harness, order_id) == [ReserveStock, ReserveStock]


async def test_an_unanswered_partial_refund_parks_only_the_refund_and_the_order_still_ships(db: Database) -> None:
    saga = OrderSaga(repository())
    harness = HandlerHarness(db, "order-service", saga.handler_map())
    order_id = await place(db)
    allocations = [
        Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2),
        Allocation(sku="SKU-B", warehouse_id="WH-1", quantity=1),
    ]
    await harness.send(StockReserved(order_id=order_id, reservation_id=uuid4(), allocations=allocations))
    payment_id, shipment_id = uuid4(), uuid4()
    await harness.send(
        PaymentCaptured(
            order_id=order_id, payment_id=payment_id, amount_minor=2000, currency="EUR", gateway_reference="g"
        )
    )
    await harness.send(
        ShipmentCreated(
            order_id=order_id, shipment_id=shipment_id, warehouse_id="WH-1", lines=allocations, mode="manual"
        )
    )
    # SKU-B is not on the shelf: its 1000 is refunded, and payment never answers.
    await harness.send(
        ShipmentPicked(
            order_id=order_id,
            shipment_id=shipment_id,
            warehouse_id="WH-1",
            picked=allocations[:1],
            short=allocations[1:],
            mode="manual",
        )
    )
    assert (await saga_row(db, order_id) or {})["command_type"] == "RefundPayment"
    await sweep_when_due(db)
    await sweep_when_due(db, waits=2)

    refund_key = f"short-ship:{shipment_id}"
    current = await order(db, order_id)
    assert current.status is OrderStatus.CONFIRMED, "the order does not wait for an operator"
    assert [(r.refund, r.failure_code) for r in current.refunds_needing_attention] == [(refund_key, "no_answer")]
    row = await saga_row(db, order_id)
    assert row is not None
    assert row["state"] == "parked", "no more automatic re-sends of the refund"
    assert await sweep_when_due(db, waits=3) == 0

    await harness.send(
        Shipped(
            order_id=order_id,
            shipment_id=shipment_id,
            warehouse_id="WH-1",
            carrier="DHL",
            tracking_number="JD1",
            tracking_url="https://track.example/JD1",
            estimated_delivery=date(2026, 12, 1),
        )
    )
    assert (await order(db, order_id)).status is OrderStatus.SHIPPED

    refunds_before = (await commands(harness, order_id)).count(RefundPayment)
    await OrderCommands(db, repository(), REGISTRY).operator_action(
        order_id, "retry", "ops-ana", "payment-service is back", refund_key
    )
    sent = [m for m in await harness.emitted(order_id) if isinstance(m, RefundPayment)]
    assert len(sent) == refunds_before + 1
    assert sent[-1] == sent[0], "an unanswered refund is retried as the very same request"
    assert (await saga_row(db, order_id) or {})["state"] == "waiting"
    await harness.send(
        PaymentRefunded(order_id=order_id, payment_id=payment_id, refund_id=uuid4(), amount_minor=1000, currency="EUR")
    )
    done = await order(db, order_id)
    assert done.partial_refunds[refund_key].status == "refunded"
    assert done.status is OrderStatus.SHIPPED
    timeline = [type(e).__name__ for e in await harness_history(db, order_id)]
    assert (
        timeline.index("OrderRefundFailed")
        < timeline.index("OrderShipped")
        < timeline.index("OrderRefundActionTaken")
        < timeline.index("OrderShortShipRefunded")
    )
