"""Holds: the risk rule, manual holds, releases and cancels of held orders; and, on the real
PostgreSQL, that a held order has no saga deadline running."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from order_test_builders import new_order, placed_order, run, saga_row, status, stock_reserved

from oms_events import Message, default_registry
from oms_events.messages import (
    CapturePayment,
    Command,
    OrderHoldReleased,
    OrderPutOnHold,
    OrderStockReserved,
    PaymentCaptured,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Allocation
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.testing import HandlerHarness, throwaway_schema
from order_service.adapters.order_repository import OrderRepository
from order_service.adapters.projection import OrderProjection, projection_metadata
from order_service.adapters.tables import metadata
from order_service.domain.order import (
    NOTHING,
    RISK_RULE,
    ActionNotAllowedError,
    Decision,
    Order,
    OrderStatus,
    Step,
)
from order_service.domain.timeline import describe
from order_service.handlers import DeadlineSweeper, OrderCommands, OrderPlacement, OrderSaga

THRESHOLD = 1_500  # the builders' order totals 2000


def held_by_risk_rule() -> Order:
    order = new_order()
    run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", THRESHOLD))
    assert status(order) is OrderStatus.ON_HOLD
    return order


def commands_of(decision: Decision) -> list[type]:
    return [type(c) for c in decision.commands]


def events_of(decision: Decision) -> list[str]:
    return [e.message_type for e in decision.events]


# ---------------------------------------------------------------- the risk rule


def test_an_order_above_the_threshold_goes_on_hold_when_its_stock_is_reserved_instead_of_capturing() -> None:
    order = new_order()
    decision = run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", THRESHOLD))
    assert events_of(decision) == ["OrderStockReserved", "OrderPutOnHold"]
    assert decision.commands == ()
    hold = decision.events[1]
    assert isinstance(hold, OrderPutOnHold)
    assert hold.held_by == RISK_RULE
    assert "2000" in hold.reason
    assert str(THRESHOLD) in hold.reason
    assert status(order) is OrderStatus.ON_HOLD
    assert order.held
    assert (order.hold_reason, order.held_by) == (hold.reason, RISK_RULE)
    assert order.reservation_id is not None


@pytest.mark.parametrize("threshold", [0, 2_000, 1_000_000])
def test_an_order_at_or_below_the_threshold_or_with_the_rule_off_is_captured(threshold: int) -> None:
    order = new_order()
    decision = run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", threshold))
    assert events_of(decision) == ["OrderStockReserved"]
    assert commands_of(decision) == [CapturePayment]
    assert status(order) is OrderStatus.AWAITING_PAYMENT
    assert not order.held


# ---------------------------------------------------------------- manual holds


def test_a_manual_hold_while_placed_waits_for_the_reservation_then_holds_instead_of_capturing() -> None:
    order = new_order()
    decision = run(order, order.put_on_hold("address looks fraudulent", "ops-ana"))
    assert events_of(decision) == ["OrderPutOnHold"]
    assert decision.commands == ()
    assert status(order) is OrderStatus.PLACED, "the reservation is still awaited"
    assert order.held
    assert order.hold_pending

    reserved = run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", 0))
    assert events_of(reserved) == ["OrderStockReserved"]
    assert reserved.commands == ()
    assert status(order) is OrderStatus.ON_HOLD
    assert (order.hold_reason, order.held_by) == ("address looks fraudulent", "ops-ana")
    assert not order.hold_pending


def test_a_held_order_above_the_threshold_is_held_once() -> None:
    order = new_order()
    run(order, order.put_on_hold("check", "ops-ana"))
    decision = run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", THRESHOLD))
    assert events_of(decision) == ["OrderStockReserved"]
    assert status(order) is OrderStatus.ON_HOLD
    assert order.held_by == "ops-ana"


def test_a_held_placed_order_whose_reservation_fails_is_rejected() -> None:
    order = new_order()
    run(order, order.put_on_hold("check", "ops-ana"))
    run(
        order,
        order.on_stock_reservation_failed(StockReservationFailed(order_id=order.order_id, reason="none", shortages=[])),
    )
    assert status(order) is OrderStatus.REJECTED
    assert not order.held
    with pytest.raises(ActionNotAllowedError, match="not on hold"):
        order.release_hold("ops-ana", "n", "tok_approve")


def test_a_manual_hold_is_refused_once_the_capture_is_sent_and_says_why() -> None:
    order = new_order()
    run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", 0))
    assert status(order) is OrderStatus.AWAITING_PAYMENT
    with pytest.raises(ActionNotAllowedError, match="can no longer stop it"):
        order.put_on_hold("too late", "ops-ana")


def test_a_hold_is_refused_on_a_held_order_and_on_final_orders() -> None:
    order = new_order()
    run(order, order.put_on_hold("check", "ops-ana"))
    with pytest.raises(ActionNotAllowedError, match="on hold already"):
        order.put_on_hold("again", "ops-bob")
    with pytest.raises(ActionNotAllowedError, match="on hold already"):
        held_by_risk_rule().put_on_hold("again", "ops-bob")

    cancelled = new_order()
    run(cancelled, cancelled.request_cancel("no", "customer"))
    with pytest.raises(ActionNotAllowedError, match="being cancelled"):
        cancelled.put_on_hold("x", "ops-ana")


# ---------------------------------------------------------------- releases


def test_releasing_a_hold_captures_the_payment_with_the_kept_token() -> None:
    order = held_by_risk_rule()
    decision = run(order, order.release_hold("ops-ana", "called the customer", "tok_approve"))
    assert events_of(decision) == ["OrderHoldReleased"]
    [capture] = decision.commands
    assert isinstance(capture, CapturePayment)
    assert (capture.amount_minor, capture.currency, capture.payment_token) == (2000, "EUR", "tok_approve")
    assert status(order) is OrderStatus.AWAITING_PAYMENT
    assert not order.held
    assert order.hold_reason is None

    # From here the saga goes on as usual.
    paid = order.on_payment_captured(
        PaymentCaptured(
            order_id=order.order_id, payment_id=uuid4(), amount_minor=2000, currency="EUR", gateway_reference="g"
        )
    )
    assert commands_of(paid) == [ShipOrder]


def test_releasing_a_pending_hold_before_the_reservation_answers_just_clears_it() -> None:
    order = new_order()
    run(order, order.put_on_hold("check", "ops-ana"))
    decision = run(order, order.release_hold("ops-ana", "false alarm", "tok_approve"))
    assert events_of(decision) == ["OrderHoldReleased"]
    assert decision.commands == (), "the capture waits for the reservation"
    assert status(order) is OrderStatus.PLACED
    assert not order.held

    reserved = run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", 0))
    assert commands_of(reserved) == [CapturePayment]
    assert status(order) is OrderStatus.AWAITING_PAYMENT


def test_a_release_is_refused_when_the_order_is_not_on_hold_or_the_token_is_gone() -> None:
    with pytest.raises(ActionNotAllowedError, match="not on hold"):
        new_order().release_hold("ops-ana", "n", "tok_approve")
    with pytest.raises(ActionNotAllowedError, match="payment token"):
        held_by_risk_rule().release_hold("ops-ana", "n", None)


# ---------------------------------------------------------------- cancels


def test_cancelling_a_held_order_releases_its_stock_and_cancels_without_a_payment() -> None:
    order = held_by_risk_rule()
    decision = run(order, order.request_cancel("customer withdrew", "ops-ana"))
    assert commands_of(decision) == [ReleaseStock]
    assert status(order) is OrderStatus.CANCELLING
    done = run(order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=uuid4())))
    assert events_of(done)[-1] == "OrderCancelled"
    assert status(order) is OrderStatus.CANCELLED
    assert order.payment_id is None
    assert not order.refunded
    with pytest.raises(ActionNotAllowedError):
        order.release_hold("ops-ana", "n", "tok_approve")


def test_cancelling_a_pending_hold_releases_and_ignores_the_late_reservation() -> None:
    order = new_order()
    run(order, order.put_on_hold("check", "ops-ana"))
    decision = run(order, order.request_cancel("fraud", "ops-ana"))
    assert commands_of(decision) == [ReleaseStock]
    assert order.on_stock_reserved(stock_reserved(order), "tok_approve", 0) == NOTHING
    run(order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=uuid4())))
    assert status(order) is OrderStatus.CANCELLED


def test_a_held_order_has_no_step_to_time_out_and_no_operator_action() -> None:
    order = held_by_risk_rule()
    assert order.on_step_timed_out(Step.RESERVE_STOCK, 3) == NOTHING
    assert order.on_step_timed_out(Step.CAPTURE_PAYMENT, 3) == NOTHING
    with pytest.raises(ActionNotAllowedError, match="not waiting for an operator"):
        order.operator_action("retry", "ops-ana", "n", None)


def test_the_history_rebuilds_a_held_then_released_order() -> None:
    placed = placed_order()
    history: list[Message] = [
        placed,
        OrderStockReserved(order_id=placed.order_id, reservation_id=uuid4(), allocations=[]),
        OrderPutOnHold(order_id=placed.order_id, reason="big", held_by=RISK_RULE),
    ]
    held = Order.from_history(placed.order_id, history)
    assert (held.status, held.held_by, held.version) == (OrderStatus.ON_HOLD, RISK_RULE, 3)
    history.append(OrderHoldReleased(order_id=placed.order_id, released_by="ops-ana", note="ok"))
    released = Order.from_history(placed.order_id, history)
    assert released.status is OrderStatus.AWAITING_PAYMENT
    assert not released.held


def test_timeline_describes_holds_and_releases() -> None:
    order_id = uuid4()
    assert describe(OrderPutOnHold(order_id=order_id, reason="total above 5000", held_by=RISK_RULE)) == (
        "Put on hold by risk-rule: total above 5000"
    )
    assert describe(OrderHoldReleased(order_id=order_id, released_by="ops-ana", note="called")) == (
        "Hold released by ops-ana: called"
    )


# ---------------------------------------------------------------- on the real PostgreSQL

REGISTRY = default_registry()
STEP = timedelta(milliseconds=100)


@pytest_asyncio.fixture
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_holds", metadata, projection_metadata) as database:
        yield database


def repository() -> OrderRepository:
    return OrderRepository(EventStore(), REGISTRY, STEP, OrderProjection())


async def load(db: Database, order_id: UUID) -> Order:
    async with db.transaction() as session:
        return await repository().load(session, order_id)


async def sent(harness: HandlerHarness, order_id: UUID) -> list[type[Message]]:
    return [type(m) for m in await harness.emitted(order_id) if isinstance(m, Command)]


async def test_a_held_order_parks_its_saga_row_so_nothing_is_re_sent_until_it_is_released(db: Database) -> None:
    harness = HandlerHarness(db, "order-service", OrderSaga(repository(), hold_above_minor=THRESHOLD).handler_map())
    placed = placed_order()
    await OrderPlacement(db, repository(), REGISTRY).place(placed, "tok_approve")
    order_id = placed.order_id
    await harness.send(
        StockReserved(
            order_id=order_id,
            reservation_id=uuid4(),
            allocations=[Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2)],
        )
    )
    assert (await load(db, order_id)).status is OrderStatus.ON_HOLD
    assert (await saga_row(db, order_id) or {})["state"] == "parked"
    assert await sent(harness, order_id) == [ReserveStock]

    sweeper = DeadlineSweeper(db, repository(), REGISTRY, step_timeout=STEP, max_attempts=2, interval_s=60)
    await asyncio.sleep(STEP.total_seconds() * 4)
    assert await sweeper.sweep() == 0, "a held order waits for a human, without a deadline"
    assert await sent(harness, order_id) == [ReserveStock]

    commands = OrderCommands(db, repository(), REGISTRY)
    with pytest.raises(ActionNotAllowedError):
        await commands.put_on_hold(order_id, "again", "ops-ana")
    await commands.release_hold(order_id, "ops-ana", "checked")
    assert (await load(db, order_id)).status is OrderStatus.AWAITING_PAYMENT
    assert await sent(harness, order_id) == [ReserveStock, CapturePayment]
    row = await saga_row(db, order_id)
    assert row is not None
    assert (row["state"], row["command_type"], row["attempts"]) == ("waiting", "CapturePayment", 1)
