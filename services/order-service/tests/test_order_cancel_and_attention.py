"""Cancels at every step, replies that race a cancel, timeouts, and operator actions."""

from uuid import uuid4

import pytest
from order_test_builders import captured, new_order, reserved_order, run, shipped, status, stock_reserved

from oms_events.messages import (
    CapturePayment,
    OrderCancelled,
    OrderNeedsAttention,
    OrderRejected,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    RefundPayment,
    ReleaseStock,
    StockReleased,
    StockReservationFailed,
)
from order_service.domain.order import NOTHING, ActionNotAllowedError, Decision, Order, OrderStatus, Step


def released(order: Order) -> StockReleased:
    return StockReleased(order_id=order.order_id, reservation_id=uuid4())


def commands_of(decision: Decision) -> list[type]:
    return [type(c) for c in decision.commands]


def test_cancel_while_stock_is_being_reserved_releases_and_ignores_the_late_reservation() -> None:
    order = new_order()
    decision = run(order, order.request_cancel("changed my mind", "customer"))
    assert status(order) is OrderStatus.CANCELLING
    assert commands_of(decision) == [ReleaseStock]
    # The reservation answer that was in flight arrives after the cancel: nothing more happens.
    assert order.on_stock_reserved(stock_reserved(order), "tok") == NOTHING
    assert (
        order.on_stock_reservation_failed(
            StockReservationFailed(order_id=order.order_id, reason="released", shortages=[])
        )
        == NOTHING
    )
    final = run(order, order.on_stock_released(released(order)))
    assert isinstance(final.events[-1], OrderCancelled)
    assert final.events[-1].requested_by == "customer"
    assert status(order) is OrderStatus.CANCELLED


def test_cancel_while_payment_is_captured_refunds_then_releases() -> None:
    order, _ = reserved_order()
    assert run(order, order.request_cancel("too slow", "customer")).commands == ()
    assert status(order) is OrderStatus.CANCELLING
    # The capture that raced the cancel succeeded: refund it first.
    payment = captured(order)
    decision = run(order, order.on_payment_captured(payment))
    [refund] = decision.commands
    assert isinstance(refund, RefundPayment)
    assert refund.payment_id == payment.payment_id
    assert refund.amount_minor == payment.amount_minor
    assert order.on_payment_captured(payment) == NOTHING  # duplicate reply
    decision = run(
        order,
        order.on_payment_refunded(
            PaymentRefunded(
                order_id=order.order_id,
                payment_id=payment.payment_id,
                refund_id=uuid4(),
                amount_minor=2000,
                currency="EUR",
            )
        ),
    )
    assert commands_of(decision) == [ReleaseStock]
    run(order, order.on_stock_released(released(order)))
    assert status(order) is OrderStatus.CANCELLED


def test_cancel_while_payment_is_declined_releases_stock_only() -> None:
    order, _ = reserved_order()
    run(order, order.request_cancel("x", "customer"))
    decision = run(
        order,
        order.on_payment_declined(
            PaymentDeclined(order_id=order.order_id, payment_id=uuid4(), reason_code="insufficient_funds", reason="no")
        ),
    )
    assert commands_of(decision) == [ReleaseStock]
    assert status(order) is OrderStatus.CANCELLING
    run(order, order.on_stock_released(released(order)))
    assert status(order) is OrderStatus.CANCELLED


@pytest.mark.parametrize("stage", ["shipped", "rejected", "cancelled"])
def test_cancel_is_refused_once_the_order_shipped_or_is_closed(stage: str) -> None:
    # (A confirmed order's cancel goes to fulfilment: test_order_fulfilment.py.)
    order, _ = reserved_order()
    if stage == "shipped":
        run(order, order.on_payment_captured(captured(order)))
    if stage == "shipped":
        run(order, order.on_shipped(shipped(order, "WH-1")))
    if stage == "rejected":
        run(
            order,
            order.on_payment_declined(
                PaymentDeclined(order_id=order.order_id, payment_id=uuid4(), reason_code="x", reason="x")
            ),
        )
        run(order, order.on_stock_released(released(order)))
    if stage == "cancelled":
        run(order, order.request_cancel("x", "customer"))
        run(
            order,
            order.on_payment_declined(
                PaymentDeclined(order_id=order.order_id, payment_id=uuid4(), reason_code="x", reason="x")
            ),
        )
        run(order, order.on_stock_released(released(order)))
    with pytest.raises(ActionNotAllowedError):
        order.request_cancel("too late", "customer")


def test_no_answer_to_the_reservation_releases_and_rejects() -> None:
    order = new_order()
    decision = run(order, order.on_step_timed_out(Step.RESERVE_STOCK, 3))
    assert commands_of(decision) == [ReleaseStock]
    assert status(order) is OrderStatus.RELEASING_STOCK
    final = run(order, order.on_stock_released(released(order)))
    rejected = final.events[-1]
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason_code == "no_reply"


@pytest.mark.parametrize("step", [Step.CAPTURE_PAYMENT, Step.SHIP_ORDER])
def test_unknown_outcome_parks_the_order_for_an_operator(step: Step) -> None:
    order, _ = reserved_order()
    if step is Step.SHIP_ORDER:
        run(order, order.on_payment_captured(captured(order)))
    decision = run(order, order.on_step_timed_out(step, 3))
    assert decision.commands == ()
    assert isinstance(decision.events[-1], OrderNeedsAttention)
    assert status(order) is OrderStatus.NEEDS_ATTENTION
    assert order.attention_step is step
    assert order.on_step_timed_out(step, 3) == NOTHING


def test_operator_retries_the_parked_step_and_the_saga_goes_on() -> None:
    order, _ = reserved_order()
    run(order, order.on_step_timed_out(Step.CAPTURE_PAYMENT, 3))
    parked = CapturePayment(
        order_id=order.order_id, customer_id="c-1", amount_minor=2000, currency="EUR", payment_token="tok"
    )
    decision = run(order, order.operator_action("retry", "ops-ana", "payment is back", parked))
    assert decision.commands == (parked,)
    assert status(order) is OrderStatus.AWAITING_PAYMENT
    run(order, order.on_payment_captured(captured(order)))
    assert status(order) is OrderStatus.CONFIRMED


def test_failed_refund_parks_then_skip_goes_on_to_release_and_cancel() -> None:
    order, _ = reserved_order()
    run(order, order.request_cancel("x", "customer"))
    payment = captured(order)
    run(order, order.on_payment_captured(payment))
    run(
        order,
        order.on_payment_refund_failed(
            PaymentRefundFailed(
                order_id=order.order_id, payment_id=payment.payment_id, reason_code="gateway_down", reason="503"
            )
        ),
    )
    assert status(order) is OrderStatus.NEEDS_ATTENTION
    assert order.attention_step is Step.REFUND_PAYMENT
    decision = run(order, order.operator_action("skip", "ops-ana", "refunded by hand in the gateway console", None))
    assert commands_of(decision) == [ReleaseStock]
    assert status(order) is OrderStatus.CANCELLING
    run(order, order.on_stock_released(released(order)))
    assert status(order) is OrderStatus.CANCELLED


def test_resolve_closes_the_order_and_skip_is_refused_for_a_forward_step() -> None:
    order, _ = reserved_order()
    run(order, order.on_step_timed_out(Step.CAPTURE_PAYMENT, 3))
    with pytest.raises(ActionNotAllowedError, match="not a compensation"):
        order.operator_action("skip", "ops", "n", None)
    with pytest.raises(ActionNotAllowedError, match="unknown action"):
        order.operator_action("explode", "ops", "n", None)
    decision = run(order, order.operator_action("resolve", "ops-ben", "voided in the gateway", None))
    assert isinstance(decision.events[-1], OrderRejected)
    assert status(order) is OrderStatus.REJECTED
    with pytest.raises(ActionNotAllowedError, match="not waiting"):
        order.operator_action("retry", "ops", "n", None)
