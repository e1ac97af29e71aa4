"""payment-service's risk review in the saga: PaymentReviewRequired holds the order; releasing the hold
re-sends the capture marked reviewed; a cancel releases the stock; a risk decline compensates as usual.
Also: the capture carries the channel and the billing and shipping countries for the risk check."""

from uuid import uuid4

from order_test_builders import new_order, placed_order, reserved_order, run, status, stock_reserved

from oms_events.messages import (
    CapturePayment,
    OrderPutOnHold,
    PaymentDeclined,
    PaymentReviewRequired,
    ReleaseStock,
)
from oms_events.values import Address
from order_service.domain.order import PAYMENT_RISK, RISK_RULE, Order, OrderStatus
from order_service.domain.saga import awaited_reply


def review(order: Order) -> PaymentReviewRequired:
    return PaymentReviewRequired(
        order_id=order.order_id,
        payment_id=uuid4(),
        reason_code="risk_review",
        reason="Review required by the risk check: billing country FR differs from shipping country DE.",
        rules=["country_mismatch"],
    )


def test_the_saga_waits_for_a_review_answer_too() -> None:
    order, _ = reserved_order()
    assert "PaymentReviewRequired" in awaited_reply(order._capture("tok_approve"))


def test_a_review_puts_the_order_on_hold_by_payment_risk() -> None:
    order, _ = reserved_order()
    decision = run(order, order.on_payment_review_required(review(order)))
    [hold] = decision.events
    assert isinstance(hold, OrderPutOnHold)
    assert hold.held_by == PAYMENT_RISK
    assert "FR" in hold.reason
    assert decision.commands == ()
    assert status(order) is OrderStatus.ON_HOLD
    assert order.held
    # A second answer (the saga's re-send was answered again) changes nothing.
    assert order.on_payment_review_required(review(order)).empty


def test_releasing_a_review_hold_re_sends_the_capture_marked_reviewed() -> None:
    order, _ = reserved_order()
    run(order, order.on_payment_review_required(review(order)))
    decision = run(order, order.release_hold("ops-ana", "called the customer", "tok_approve"))
    [capture] = decision.commands
    assert isinstance(capture, CapturePayment)
    assert capture.reviewed
    assert (capture.amount_minor, capture.currency, capture.payment_token) == (2000, "EUR", "tok_approve")
    assert status(order) is OrderStatus.AWAITING_PAYMENT


def test_releasing_the_order_services_own_risk_hold_does_not_skip_the_payment_risk_check() -> None:
    order = new_order()
    run(order, order.on_stock_reserved(stock_reserved(order), "tok_approve", 1_000))
    assert order.held_by == RISK_RULE
    [capture] = run(order, order.release_hold("ops", "ok", "tok_approve")).commands
    assert isinstance(capture, CapturePayment)
    assert not capture.reviewed


def test_cancelling_an_order_held_for_review_releases_the_stock() -> None:
    order, _ = reserved_order()
    run(order, order.on_payment_review_required(review(order)))
    decision = run(order, order.request_cancel("fraud confirmed", "ops-ana"))
    assert [type(c) for c in decision.commands] == [ReleaseStock]


def test_a_review_that_arrives_during_a_cancel_releases_the_stock() -> None:
    order, _ = reserved_order()
    run(order, order.request_cancel("changed my mind", "customer"))
    decision = order.on_payment_review_required(review(order))
    assert [type(c) for c in decision.commands] == [ReleaseStock]


def test_a_risk_decline_compensates_like_any_decline() -> None:
    order, _ = reserved_order()
    declined = PaymentDeclined(
        order_id=order.order_id, payment_id=uuid4(), reason_code="fraud_suspected", reason="Declined by the risk check"
    )
    decision = run(order, order.on_payment_declined(declined))
    assert [type(c) for c in decision.commands] == [ReleaseStock]
    assert status(order) is OrderStatus.RELEASING_STOCK


def test_the_capture_carries_channel_and_countries() -> None:
    placed = placed_order().model_copy(
        update={
            "billing_address": Address(name="J", line1="1 Rue", city="Paris", postal_code="75001", country="FR"),
        }
    )
    order = Order(placed.order_id)
    run(order, Order.place(placed))
    capture = order._capture("tok_approve")
    assert (capture.channel, capture.billing_country, capture.shipping_country) == ("marketplace", "FR", "DE")
    assert not capture.reviewed
