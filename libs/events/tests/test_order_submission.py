"""The one validation of an order submission, shared by POST /orders and SubmitOrder on the intake topic."""

from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from oms_events import ContractViolationError, default_registry
from oms_events.messages import SubmitOrder
from oms_events.topics import ORDERS_INTAKE
from oms_events.values import MAX_ORDER_LINES, OrderSubmission, field_problems, looks_like_card_number, order_id_for


def body(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": "marketplace",
        "external_reference": "MP-1001",
        "customer": {"customer_id": "cust-1", "name": "Jane Doe", "email": "jane@example.com"},
        "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250}],
        "currency": "EUR",
        "shipping_address": {
            "name": "Jane Doe",
            "line1": "Invalidenstrasse 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "delivery_method": "standard",
        "payment_token": "tok_approve",
    }
    data.update(changes)
    return data


def submission(**changes: Any) -> dict[str, Any]:
    data = body(**changes)
    return {**data, "order_id": str(order_id_for(data["channel"], data["external_reference"]))}


def bad_fields(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        OrderSubmission.model_validate(data)
    return [p.field for p in field_problems(info.value)]


def test_a_valid_submission_and_its_total() -> None:
    order = OrderSubmission.model_validate(body(lines=[{"sku": "A", "quantity": 3, "unit_price_minor": 100}] * 2))
    assert order.total_minor == 600


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": [{"sku": "A", "quantity": 0, "unit_price_minor": 1}]}, "lines.0.quantity"),
        ({"lines": [{"sku": "A", "quantity": -1, "unit_price_minor": 1}]}, "lines.0.quantity"),
        ({"lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 12.5}]}, "lines.0.unit_price_minor"),
        ({"lines": [{"sku": "A", "quantity": 1, "unit_price_minor": -1}]}, "lines.0.unit_price_minor"),
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1}] * (MAX_ORDER_LINES + 1)}, "lines"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"delivery_method": "teleport"}, "delivery_method"),
        ({"channel": "fax"}, "channel"),
        ({"external_reference": ""}, "external_reference"),
        ({"payment_token": ""}, "payment_token"),
    ],
)
def test_every_rule_names_its_field(change: dict[str, Any], field: str) -> None:
    assert bad_fields(body(**change)) == [field]


def test_address_and_customer_fields_are_named_one_by_one() -> None:
    address = {"name": "", "line1": "x", "city": "", "postal_code": "1", "country": "Germany"}
    customer = {"customer_id": "c", "name": "n"}
    fields = bad_fields(body(shipping_address=address, customer=customer))
    assert fields == [
        "customer.email",
        "shipping_address.name",
        "shipping_address.city",
        "shipping_address.country",
    ]


def test_max_lines_is_allowed() -> None:
    lines = [{"sku": "A", "quantity": 1, "unit_price_minor": 1}] * MAX_ORDER_LINES
    assert len(OrderSubmission.model_validate(body(lines=lines)).lines) == MAX_ORDER_LINES


def test_the_order_id_is_derived_from_channel_and_reference() -> None:
    assert order_id_for("web", "R-1") == order_id_for("web", "R-1")
    assert order_id_for("web", "R-1") != order_id_for("store", "R-1")
    assert order_id_for("web", "R-1") != order_id_for("web", "R-2")
    assert order_id_for("web", "R-1").version == 5


def test_submit_order_carries_exactly_the_submission_and_is_keyed_by_the_derived_id() -> None:
    command = SubmitOrder.model_validate(submission())
    assert command.topic == ORDERS_INTAKE
    assert command.order_id == order_id_for("marketplace", "MP-1001")
    assert command.key == str(command.order_id)
    assert set(SubmitOrder.model_fields) == {*OrderSubmission.model_fields, "order_id"}


def test_submit_order_refuses_an_order_id_that_is_not_the_derived_one() -> None:
    with pytest.raises(ValidationError) as info:
        SubmitOrder.model_validate({**body(), "order_id": str(uuid4())})
    [problem] = field_problems(info.value)
    assert problem.field == "order_id"
    assert str(order_id_for("marketplace", "MP-1001")) in problem.message


def test_submit_order_validates_like_the_submission_and_the_registry_lists_the_fields() -> None:
    registry = default_registry()
    data = submission()
    data["lines"] = [{"sku": "A", "quantity": 0, "unit_price_minor": 1}]
    data["customer"] = {"customer_id": "c", "name": "n"}
    envelope = registry.wrap(SubmitOrder.model_validate(submission()), producer="test")
    with pytest.raises(ContractViolationError) as info:
        registry.decode(envelope.model_copy(update={"payload": data}))
    assert [e.field for e in info.value.errors] == ["customer.email", "lines.0.quantity"]
    assert "lines.0.quantity" in info.value.reason
    assert "customer.email" in info.value.reason


# ---------------------------------------------------------------- card numbers (PANs) are never accepted


@pytest.mark.parametrize(
    "token",
    [
        "4111111111111111",  # Visa test PAN, 16 digits
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "378282246310005",  # Amex, 15 digits
        "4222222222222",  # 13 digits
        "6011000990139424",  # Discover
        "3530111333300000",  # JCB
        "6304000000000000000",  # Maestro, 19 digits
        "tok_4111111111111111",  # a PAN inside a token is still a PAN
    ],
)
def test_card_numbers_are_recognised(token: str) -> None:
    assert looks_like_card_number(token)


@pytest.mark.parametrize(
    "token",
    [
        "tok_approve",
        "tok_decline_fraud",
        "123456789012",  # 12 digits: too short
        "4111111111111112",  # 16 digits that fail the Luhn check
        "41111111111111111111",  # 20 digits: too long for a PAN
        "tok_2024_05_17",
        "pm_1Nv0xY2eZvKYlo2C",
    ],
)
def test_tokens_are_not_card_numbers(token: str) -> None:
    assert not looks_like_card_number(token)


def test_a_card_number_as_payment_token_is_refused_naming_the_field_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as failure:
        OrderSubmission.model_validate(body(payment_token="4111 1111 1111 1111"))
    [problem] = field_problems(failure.value)
    assert problem.field == "payment_token"
    assert "card number" in problem.message
    assert "4111" not in problem.message


def test_a_card_number_on_the_intake_topic_is_a_contract_violation_naming_the_field() -> None:
    registry = default_registry()
    envelope = registry.wrap(SubmitOrder.model_validate(submission()), producer="test").model_copy(
        update={"payload": submission(payment_token="4111111111111111")}
    )
    with pytest.raises(ContractViolationError) as failure:
        registry.decode(envelope)
    assert [e.field for e in failure.value.errors] == ["payment_token"]
    assert "4111111111111111" not in failure.value.reason


def test_an_optional_billing_address_is_accepted() -> None:
    order = OrderSubmission.model_validate(
        body(billing_address={"name": "J", "line1": "1 Rue", "city": "Paris", "postal_code": "75001", "country": "FR"})
    )
    assert order.billing_address is not None
    assert order.billing_address.country == "FR"
    assert OrderSubmission.model_validate(body()).billing_address is None
