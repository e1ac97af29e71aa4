"""The payment's pure rules: state from events, decisions, the card-number screen."""

from uuid import uuid4

import pytest

from oms_events.messages import PaymentCaptured, PaymentDeclined, StockReserved
from oms_events.values import Allocation
from payment_service.domain.gateway import GatewayResult
from payment_service.domain.payment import (
    Payment,
    idempotency_key,
    looks_like_card_number,
    payment_id_for,
    stream_id,
)


def test_ids_and_keys_are_derived_from_the_order() -> None:
    order_id = uuid4()
    assert stream_id(order_id) == f"payment-{order_id}"
    assert idempotency_key(order_id) == f"capture-{order_id}"
    assert payment_id_for(order_id) == payment_id_for(order_id)
    assert payment_id_for(order_id) != payment_id_for(uuid4())


def test_a_new_payment_is_undecided() -> None:
    order_id = uuid4()
    payment = Payment.rebuild(order_id, [])
    assert payment.decision is None
    assert payment.version == 0
    assert payment.payment_id == payment_id_for(order_id)


def test_approved_result_becomes_payment_captured() -> None:
    order_id = uuid4()
    event = Payment(order_id).decide(12_345, "EUR", GatewayResult(approved=True, reference="sim_ch_1"))
    assert event == PaymentCaptured(
        order_id=order_id,
        payment_id=payment_id_for(order_id),
        amount_minor=12_345,
        currency="EUR",
        gateway_reference="sim_ch_1",
    )


def test_declined_result_becomes_payment_declined() -> None:
    order_id = uuid4()
    result = GatewayResult(
        approved=False, reference="sim_dc_1", reason_code="insufficient_funds", reason="Not enough money."
    )
    event = Payment(order_id).decide(500, "GBP", result)
    assert isinstance(event, PaymentDeclined)
    assert (event.reason_code, event.reason, event.payment_id) == (
        "insufficient_funds",
        "Not enough money.",
        payment_id_for(order_id),
    )


def test_a_declined_result_needs_a_reason_code() -> None:
    with pytest.raises(ValueError, match="reason_code"):
        GatewayResult(approved=False, reference="x")


def test_rebuild_keeps_the_first_decision_and_counts_versions() -> None:
    order_id = uuid4()
    captured = PaymentCaptured(
        order_id=order_id, payment_id=uuid4(), amount_minor=100, currency="EUR", gateway_reference="r1"
    )
    later = PaymentDeclined(order_id=order_id, payment_id=uuid4(), reason_code="x", reason="y")
    payment = Payment.rebuild(order_id, [captured, later])
    assert payment.decision == captured
    assert payment.payment_id == captured.payment_id
    assert payment.version == 2


def test_unrelated_events_only_move_the_version() -> None:
    order_id = uuid4()
    other = StockReserved(
        order_id=order_id, reservation_id=uuid4(), allocations=[Allocation(sku="A", warehouse_id="W", quantity=1)]
    )
    payment = Payment.rebuild(order_id, [other])
    assert (payment.decision, payment.version) == (None, 1)


def test_a_decided_payment_cannot_decide_again() -> None:
    order_id = uuid4()
    payment = Payment(order_id).apply(
        PaymentDeclined(order_id=order_id, payment_id=payment_id_for(order_id), reason_code="x", reason="y")
    )
    with pytest.raises(ValueError, match="already decided"):
        payment.decide(1, "EUR", GatewayResult(approved=True, reference="r"))


@pytest.mark.parametrize(
    "token",
    [
        "4111111111111111",  # Visa test PAN, 16 digits
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "378282246310005",  # Amex, 15 digits
        "4222222222222",  # 13 digits
        "6011000990139424000",  # 19 digits
        "tok_4111111111111111",  # a PAN inside a token is still a PAN
        "12345678901234567890123",  # longer runs are refused too
    ],
)
def test_card_numbers_are_recognised(token: str) -> None:
    assert looks_like_card_number(token)


@pytest.mark.parametrize(
    "token", ["tok_approve", "tok_visa", "tok_decline_fraud", "123456789012", "tok_2024_05_17", "pm_1Nv0xY2eZvKYlo2C"]
)
def test_tokens_are_not_card_numbers(token: str) -> None:
    assert not looks_like_card_number(token)


def test_a_card_number_token_is_refused_with_invalid_token() -> None:
    order_id = uuid4()
    refusal = Payment(order_id).refuse_token("4111 1111 1111 1111")
    assert refusal is not None
    assert refusal.reason_code == "invalid_token"
    assert refusal.payment_id == payment_id_for(order_id)
    assert "4111" not in refusal.reason
    assert Payment(order_id).refuse_token("tok_visa") is None
