"""Refunds by the payment's pure rules: what may be refunded, keys and ids, answers to the gateway's result."""

from uuid import UUID, uuid4

import pytest

from oms_events.messages import PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentRefundFailed, RefundPayment
from payment_service.domain.gateway import GatewayResult
from payment_service.domain.payment import (
    AlreadyRefunded,
    GatewayRefund,
    Payment,
    payment_id_for,
    refund_id_for,
    refund_idempotency_key,
)


def captured(order_id: UUID, amount_minor: int = 10_000, currency: str = "EUR") -> Payment:
    return Payment(order_id).apply(
        PaymentCaptured(
            order_id=order_id,
            payment_id=payment_id_for(order_id),
            amount_minor=amount_minor,
            currency=currency,
            gateway_reference="sim_ch_1",
        )
    )


def refund(
    order_id: UUID, amount_minor: int = 10_000, currency: str = "EUR", reason: str = "cancelled"
) -> RefundPayment:
    return RefundPayment(
        order_id=order_id,
        payment_id=payment_id_for(order_id),
        amount_minor=amount_minor,
        currency=currency,
        reason=reason,
    )


def refunded(payment: Payment, command: RefundPayment) -> Payment:
    step = payment.plan_refund(command)
    assert isinstance(step, GatewayRefund)
    event = payment.record_refund(step, GatewayResult(approved=True, reference="sim_rf_1"))
    return payment.apply(event)


def refusal(step: object) -> str:
    assert isinstance(step, PaymentRefundFailed)
    assert step.reason
    return step.reason_code


def test_the_refund_key_is_the_request_not_the_message() -> None:
    order_id = uuid4()
    key = refund_idempotency_key(refund(order_id))
    assert key.startswith(f"refund-{order_id}-")
    assert len(key) <= 200
    assert refund_idempotency_key(refund(order_id)) == key  # a re-sent command: same key
    assert refund_idempotency_key(refund(order_id, amount_minor=9_999)) != key
    assert refund_idempotency_key(refund(order_id, currency="USD")) != key
    assert refund_idempotency_key(refund(order_id, reason="line 2 returned")) != key
    assert refund_idempotency_key(refund(uuid4())) != key
    assert refund_id_for(key) == refund_id_for(key)
    assert refund_id_for(key) != refund_id_for(refund_idempotency_key(refund(order_id, amount_minor=1)))


def test_a_captured_payment_may_be_refunded_in_full() -> None:
    order_id = uuid4()
    command = refund(order_id)
    step = captured(order_id).plan_refund(command)
    key = refund_idempotency_key(command)
    assert step == GatewayRefund(
        idempotency_key=key,
        refund_id=refund_id_for(key),
        gateway_reference="sim_ch_1",
        amount_minor=10_000,
        currency="EUR",
    )


def test_an_approved_refund_becomes_payment_refunded() -> None:
    order_id = uuid4()
    payment = captured(order_id)
    step = payment.plan_refund(refund(order_id, 2_500))
    assert isinstance(step, GatewayRefund)
    event = payment.record_refund(step, GatewayResult(approved=True, reference="sim_rf_1"))
    assert event == PaymentRefunded(
        order_id=order_id,
        payment_id=payment_id_for(order_id),
        refund_id=step.refund_id,
        amount_minor=2_500,
        currency="EUR",
    )


def test_a_refused_refund_carries_the_gateways_reason() -> None:
    order_id = uuid4()
    payment = captured(order_id)
    step = payment.plan_refund(refund(order_id, amount_minor=2500))
    assert isinstance(step, GatewayRefund)
    event = payment.record_refund(
        step, GatewayResult(approved=False, reference="sim_rr_1", reason_code="exceeds_captured", reason="Too much.")
    )
    assert isinstance(event, PaymentRefundFailed)
    assert (event.reason_code, event.reason) == ("exceeds_captured", "Too much.")
    # The saga tells which of its partial refunds failed by the amount.
    assert (event.amount_minor, event.currency) == (2500, "EUR")


def test_a_refund_refused_by_the_rules_names_the_amount_asked() -> None:
    order_id = uuid4()
    event = captured(order_id, amount_minor=1000).plan_refund(refund(order_id, amount_minor=1500))
    assert refusal(event) == "exceeds_captured"
    assert isinstance(event, PaymentRefundFailed)
    assert (event.amount_minor, event.currency) == (1500, "EUR")


def test_partial_refunds_add_up_to_the_captured_amount_and_no_further() -> None:
    order_id = uuid4()
    payment = refunded(captured(order_id), refund(order_id, 3_000, reason="line 1"))
    payment = refunded(payment, refund(order_id, 3_000, reason="line 2"))
    assert (payment.refunded_minor, payment.refundable_minor) == (6_000, 4_000)
    assert refusal(payment.plan_refund(refund(order_id, 4_001, reason="rest"))) == "exceeds_captured"
    payment = refunded(payment, refund(order_id, 4_000, reason="rest"))
    assert payment.refundable_minor == 0
    assert refusal(payment.plan_refund(refund(order_id, 1, reason="one more"))) == "exceeds_captured"


def test_more_than_captured_is_refused() -> None:
    order_id = uuid4()
    assert refusal(captured(order_id).plan_refund(refund(order_id, 10_001))) == "exceeds_captured"


def test_a_request_refunded_before_is_answered_again_even_when_nothing_is_left() -> None:
    order_id = uuid4()
    command = refund(order_id)
    payment = refunded(captured(order_id), command)
    step = payment.plan_refund(command)
    assert isinstance(step, AlreadyRefunded)
    assert step.event == payment.refunds[0]
    assert step.event.refund_id == refund_id_for(refund_idempotency_key(command))


def test_a_payment_never_captured_is_not_refunded() -> None:
    order_id = uuid4()
    assert refusal(Payment(order_id).plan_refund(refund(order_id))) == "not_captured"


def test_a_declined_payment_is_not_refunded() -> None:
    order_id = uuid4()
    payment = Payment(order_id).apply(
        PaymentDeclined(
            order_id=order_id, payment_id=payment_id_for(order_id), reason_code="suspected_fraud", reason="x"
        )
    )
    step = payment.plan_refund(refund(order_id))
    assert refusal(step) == "not_captured"
    assert isinstance(step, PaymentRefundFailed)
    assert "suspected_fraud" in step.reason


def test_another_currency_is_refused() -> None:
    order_id = uuid4()
    assert refusal(captured(order_id).plan_refund(refund(order_id, 100, "USD"))) == "currency_mismatch"


def test_another_payment_id_is_refused() -> None:
    order_id = uuid4()
    command = refund(order_id).model_copy(update={"payment_id": uuid4()})
    step = captured(order_id).plan_refund(command)
    assert refusal(step) == "unknown_payment"
    assert isinstance(step, PaymentRefundFailed)
    assert step.payment_id == command.payment_id


def test_a_refund_of_nothing_is_refused() -> None:
    order_id = uuid4()
    assert refusal(captured(order_id).plan_refund(refund(order_id, 0))) == "invalid_amount"


def test_rebuild_folds_refunds_and_failures() -> None:
    order_id = uuid4()
    first = refunded(captured(order_id), refund(order_id, 1_000))
    events = [
        first.decision,
        first.refunds[0],
        first.refunds[0],  # a duplicate in the stream is counted once
        PaymentRefundFailed(order_id=order_id, payment_id=payment_id_for(order_id), reason_code="x", reason="y"),
    ]
    payment = Payment.rebuild(order_id, [e for e in events if e is not None])
    assert payment.version == 4
    assert payment.refunded_minor == 1_000
    assert payment.refundable_minor == 9_000


@pytest.mark.parametrize("amount_minor", [1, 9_999, 10_000])
def test_any_amount_up_to_the_captured_one_goes_to_the_gateway(amount_minor: int) -> None:
    order_id = uuid4()
    assert isinstance(captured(order_id).plan_refund(refund(order_id, amount_minor)), GatewayRefund)
