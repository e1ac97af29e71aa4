"""POST /orders and SubmitOrder on the intake topic accept and refuse the same orders: one validation."""

from typing import Any

import pytest
from pydantic import ValidationError

from oms_events.messages import SubmitOrder
from oms_events.values import OrderSubmission, field_problems, order_id_for
from order_service.entrypoints.schemas import PlaceOrderRequest
from order_service.handlers import order_placed


def order_body(lines: list[tuple[str, int, int]], *, channel: str, reference: str) -> dict[str, Any]:
    return {
        "channel": channel,
        "external_reference": reference,
        "customer": {"customer_id": "cust-42", "name": "Jane Doe", "email": "jane@example.com"},
        "lines": [{"sku": sku, "quantity": qty, "unit_price_minor": price} for sku, qty, price in lines],
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


def problems(model: type[OrderSubmission], data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [(p.field, p.message) for p in field_problems(info.value) if p.field != "order_id"]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda b: b["lines"][0].update(quantity=0),
        lambda b: b["lines"][0].update(unit_price_minor=9.99),
        lambda b: b.update(currency="euro"),
        lambda b: b["shipping_address"].pop("city"),
        lambda b: b.update(delivery_method="drone"),
        lambda b: b.update(lines=b["lines"] * 201),
        lambda b: b["customer"].pop("email"),
        lambda b: b.update(payment_token="4111 1111 1111 1111"),  # a card number, never accepted
    ],
)
def test_http_and_intake_refuse_the_same_bodies_with_the_same_fields(spoil: Any) -> None:
    data = order_body([("SKU-1", 1, 100)], channel="phone", reference="PH-1")
    spoil(data)
    via_http = problems(PlaceOrderRequest, data)
    via_intake = problems(SubmitOrder, {**data, "order_id": str(order_id_for("phone", "PH-1"))})
    assert via_http
    assert via_http == via_intake


def test_http_alone_refuses_unknown_fields_and_both_make_the_same_order_placed() -> None:
    data = order_body([("SKU-1", 2, 100)], channel="web", reference="W-1")
    assert problems(PlaceOrderRequest, {**data, "coupon": "X"}) == [("coupon", "Extra inputs are not permitted")]
    order_id = order_id_for("web", "W-1")
    http = order_placed(PlaceOrderRequest.model_validate(data), order_id)
    intake = order_placed(SubmitOrder.model_validate({**data, "order_id": str(order_id)}), order_id)
    assert http == intake
    assert http.total_minor == 200
