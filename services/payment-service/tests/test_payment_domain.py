"""The payment's pure rules: state from events, decisions, the card-number screen."""

from uuid import uuid4

import pytest

from oms_events.messages import PaymentAuthorised, PaymentCaptured, PaymentDeclined, StockReserved
from oms_events.values import Allocation
from payment_service.domain.gateway import GatewayResult
from payment_service.domain.payment import (
    Payment,
    idempotency_key,
    payment_id_for,
    stream_id,
)


def test_ids_and_keys_are_derived_from_the_order() -> None:
    order_id = uuid4()
    assert stream_id(order_id) == f"payment-{order_id}"
    assert idempotency_key(order_id) == f"capture-{order_id}"
    assert idempotency_key(order_id, "authorise") == f"authorise-{order_id}"
    assert idempotency_key(order_id, "void") == f"void-{order_id}"
    assert payment_id_for(order_id) == payment_id_for(order_id)
    assert payment_id_for(order_id) != payment_id_for(uuid4())


def test_a_new_payment_is_undecided() -> None:
    order_id = uuid4()
    payment = Payment.rebuild(order_id, [])
    assert payment.decision is None
    assert payment.version == 0
    assert payment.payment_id == payment_id_for(order_id)


def test_approved_authorisation_and_capture_become_events() -> None:
    order_id = uuid4()
    payment = Payment(order_id)
    authorised = payment.authorised(12_345, "EUR", GatewayResult(approved=True, reference="sim_au_1"))
    assert authorised == PaymentAuthorised(
        order_id=order_id,
        payment_id=payment_id_for(order_id),
        amount_minor=12_345,
        currency="EUR",
        gateway_reference="sim_au_1",
    )
    captured = payment.captured_event(authorised, GatewayResult(approved=True, reference="sim_ch_1"), "web")
    assert captured == PaymentCaptured(
        order_id=order_id,
        payment_id=payment_id_for(order_id),
        amount_minor=12_345,
        currency="EUR",
        gateway_reference="sim_ch_1",
        channel="web",
    )


def test_declined_authorisation_becomes_payment_declined() -> None:
    order_id = uuid4()
    result = GatewayResult(
        approved=False, reference="sim_ad_1", reason_code="insufficient_funds", reason="Not enough money."
    )
    event = Payment(order_id).authorised(500, "GBP", result)
    assert isinstance(event, PaymentDeclined)
    assert (event.reason_code, event.reason, event.payment_id) == (
        "insufficient_funds",
        "Not enough money.",
        payment_id_for(order_id),
    )


def test_a_failed_capture_voids_and_declines() -> None:
    order_id = uuid4()
    payment = Payment(order_id)
    authorised = payment.authorised(700, "EUR", GatewayResult(approved=True, reference="sim_au_1"))
    assert isinstance(authorised, PaymentAuthorised)
    voided, declined = payment.capture_failed(authorised, "processing_error", GatewayResult(True, "sim_vo_1"))
    assert voided is not None
    assert voided.gateway_reference == "sim_au_1"
    assert declined.reason_code == "capture_failed"
    not_voided, _ = payment.capture_failed(authorised, "x", GatewayResult(False, "sim_vr_1", "already_voided"))
    assert not_voided is None


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
        payment.declined("x", "y")


def test_a_review_and_an_authorisation_are_kept_but_decide_nothing() -> None:
    order_id = uuid4()
    payment = Payment(order_id)
    review = payment.review_required("amount above the limit", ["amount_review"])
    authorised = payment.authorised(100, "EUR", GatewayResult(approved=True, reference="sim_au_1"))
    rebuilt = Payment.rebuild(order_id, [review, authorised])
    assert (rebuilt.review, rebuilt.authorisation, rebuilt.decision, rebuilt.version) == (review, authorised, None, 2)


def test_a_card_number_token_is_refused_with_a_clear_reason_code() -> None:
    order_id = uuid4()
    refusal = Payment(order_id).refuse_token("4111 1111 1111 1111")
    assert refusal is not None
    assert refusal.reason_code == "card_number_rejected"
    assert refusal.payment_id == payment_id_for(order_id)
    assert "4111" not in refusal.reason
    assert Payment(order_id).refuse_token("tok_visa") is None
