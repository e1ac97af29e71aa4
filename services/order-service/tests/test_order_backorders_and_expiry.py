"""Backorders and expired reservations in the saga: a backordered order waits without a deadline, goes on
when its stock is reserved and can be cancelled meanwhile; an expired reservation cancels the order through
the cancel path (refunding a capture in flight), and parks a paid one for an operator."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest_asyncio
from order_test_builders import captured, placed_order, reserved_order, run, saga_row, status, stock_reserved

from oms_events import Command, default_registry
from oms_events.messages import (
    CapturePayment,
    OrderBackordered,
    OrderCancellationRequested,
    OrderCancelled,
    OrderPlaced,
    OrderReservationExpired,
    PaymentDeclined,
    PaymentRefunded,
    RefundPayment,
    ReleaseStock,
    ReservationExpired,
    ReserveStock,
    StockBackordered,
    StockReleased,
    StockReserved,
)
from oms_events.values import Allocation, Shortage
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.testing import HandlerHarness, throwaway_schema
from order_service.adapters.order_repository import OrderRepository
from order_service.adapters.projection import OrderProjection, projection_metadata
from order_service.adapters.tables import metadata
from order_service.domain.order import NOTHING, Order, OrderStatus, Step
from order_service.domain.timeline import describe
from order_service.handlers import DeadlineSweeper, OrderCommands, OrderPlacement, OrderSaga

SHORT = [Shortage(sku="SKU-A", requested=2, available=0)]


def backorderable() -> OrderPlaced:
    return placed_order().model_copy(update={"allow_backorder": True})


def backordered_order() -> Order:
    placed = backorderable()
    order = Order(placed.order_id)
    [reserve] = run(order, Order.place(placed)).commands
    assert isinstance(reserve, ReserveStock)
    assert reserve.allow_backorder
    assert reserve.shipping_address == placed.shipping_address  # for the nearest warehouse
    decision = run(order, order.on_stock_backordered(StockBackordered(order_id=order.order_id, shortages=SHORT)))
    assert [type(e) for e in decision.events] == [OrderBackordered]
    assert decision.commands == ()
    assert status(order) is OrderStatus.BACKORDERED
    return order


def expired_reply(order: Order) -> ReservationExpired:
    assert order.reservation_id is not None
    return ReservationExpired(
        order_id=order.order_id,
        reservation_id=order.reservation_id,
        allocations=list(order.allocations),
        expired_at=datetime.now(UTC),
    )


def test_a_backordered_order_goes_on_when_its_stock_is_reserved() -> None:
    order = backordered_order()
    decision = run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve"))
    assert [type(c) for c in decision.commands] == [CapturePayment]
    assert status(order) is OrderStatus.AWAITING_PAYMENT


def test_a_backordered_order_waits_without_timing_out_and_can_be_cancelled() -> None:
    order = backordered_order()
    assert order.on_step_timed_out(Step.RESERVE_STOCK, 3) == NOTHING
    decision = run(order, order.request_cancel("changed my mind", "customer"))
    assert [type(c) for c in decision.commands] == [ReleaseStock]
    run(order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=None)))
    assert status(order) is OrderStatus.CANCELLED


def test_an_order_that_does_not_allow_backorders_ignores_the_answer_unless_placed() -> None:
    order, _ = reserved_order()
    assert order.on_stock_backordered(StockBackordered(order_id=order.order_id, shortages=SHORT)) == NOTHING


def test_an_expired_reservation_while_the_capture_is_in_flight_cancels_and_refunds() -> None:
    order, _ = reserved_order()
    decision = run(order, order.on_reservation_expired(expired_reply(order)))
    assert [type(e) for e in decision.events] == [OrderReservationExpired, OrderCancellationRequested]
    assert status(order) is OrderStatus.CANCELLING
    capture = captured(order)
    [refund] = run(order, order.on_payment_captured(capture)).commands
    assert isinstance(refund, RefundPayment)
    refunded = PaymentRefunded(
        order_id=order.order_id, payment_id=capture.payment_id, refund_id=uuid4(), amount_minor=2000, currency="EUR"
    )
    [release] = run(order, order.on_payment_refunded(refunded)).commands
    assert isinstance(release, ReleaseStock)
    [*_, cancelled] = run(
        order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=None))
    ).events
    assert isinstance(cancelled, OrderCancelled)
    assert cancelled.reason_code == "reservation_expired"
    assert "in time" in cancelled.customer_message
    assert status(order) is OrderStatus.CANCELLED


def test_an_expired_reservation_with_a_declined_capture_is_cancelled() -> None:
    order, _ = reserved_order()
    run(order, order.on_reservation_expired(expired_reply(order)))
    declined = PaymentDeclined(order_id=order.order_id, payment_id=uuid4(), reason_code="x", reason="no")
    [release] = run(order, order.on_payment_declined(declined)).commands
    assert isinstance(release, ReleaseStock)


def test_an_expired_reservation_of_a_paid_order_needs_an_operator_and_a_stale_one_is_ignored() -> None:
    order, _ = reserved_order()
    run(order, order.on_payment_captured(captured(order)))
    assert status(order) is OrderStatus.CONFIRMED
    stale = expired_reply(order).model_copy(update={"reservation_id": uuid4()})
    assert order.on_reservation_expired(stale) == NOTHING
    run(order, order.on_reservation_expired(expired_reply(order)))
    assert status(order) is OrderStatus.NEEDS_ATTENTION
    assert order.attention_step is Step.SHIP_ORDER


def test_timeline_describes_backorders_and_expiries() -> None:
    order_id = uuid4()
    assert (
        describe(OrderBackordered(order_id=order_id, shortages=SHORT))
        == "Backordered: waiting for stock of SKU-A (2 short)"
    )
    assert "expired" in describe(OrderReservationExpired(order_id=order_id, reservation_id=uuid4()))


# ---------------------------------------------------------------- on the real PostgreSQL

REGISTRY = default_registry()
STEP = timedelta(milliseconds=100)


@pytest_asyncio.fixture
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_backorders", metadata, projection_metadata) as database:
        yield database


def repository() -> OrderRepository:
    return OrderRepository(EventStore(), REGISTRY, STEP, OrderProjection())


async def test_a_backordered_order_has_no_deadline_running_and_a_held_one_is_cancelled_on_expiry(db: Database) -> None:
    harness = HandlerHarness(db, "order-service", OrderSaga(repository()).handler_map())
    placed = backorderable()
    await OrderPlacement(db, repository(), REGISTRY).place(placed, "tok_approve")
    order_id = placed.order_id
    await harness.send(StockBackordered(order_id=order_id, shortages=SHORT))
    assert (await saga_row(db, order_id) or {})["state"] == "parked"
    sweeper = DeadlineSweeper(db, repository(), REGISTRY, step_timeout=STEP, max_attempts=2, interval_s=60)
    await asyncio.sleep(STEP.total_seconds() * 4)
    assert await sweeper.sweep() == 0, "a backorder waits for stock, not for a deadline"

    await OrderCommands(db, repository(), REGISTRY).put_on_hold(order_id, "check", "ops-ana")
    reservation_id = uuid4()
    allocations = [Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2)]
    await harness.send(StockReserved(order_id=order_id, reservation_id=reservation_id, allocations=allocations))
    async with db.transaction() as session:
        assert (await repository().load(session, order_id)).status is OrderStatus.ON_HOLD
    await harness.send(
        ReservationExpired(
            order_id=order_id, reservation_id=reservation_id, allocations=allocations, expired_at=datetime.now(UTC)
        )
    )
    commands = [type(m) for m in await harness.emitted(order_id) if isinstance(m, Command)]
    assert commands == [ReserveStock, ReleaseStock]
    assert (await saga_row(db, order_id) or {})["state"] == "waiting"
    await harness.send(StockReleased(order_id=order_id, reservation_id=reservation_id))
    async with db.transaction() as session:
        assert (await repository().load(session, order_id)).status is OrderStatus.CANCELLED
