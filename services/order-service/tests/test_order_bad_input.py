"""Bad input never reaches order-service's database: each is a 422 naming the field (or a 404 for a
token that cannot be right), and the same request with a good value does reach the database (a 503 here,
where the database is away): the edge, not PostgreSQL, refused the bad one."""

import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from oms_runtime.testing_http import changed, edge_client, json_body, named_fields, reached_a_dependency
from order_service.entrypoints.auth import API_KEYS_ADAPTER, Authenticator

OPS_KEY = "edge-ops-key-0123456789"
API_KEYS = json.dumps([{"name": "edge-ops", "key": OPS_KEY, "role": "ops"}])
TRACKING_SECRET = "edge-tracking-secret-0123456789"
ORDER = {
    "channel": "web",
    "external_reference": "EDGE-1",
    "customer": {"customer_id": "c-1", "name": "Jane Doe", "email": "jane@example.com"},
    "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1000}],
    "currency": "EUR",
    "shipping_address": {
        "name": "Jane Doe",
        "line1": "Main 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    "billing_address": {
        "name": "Jane Doe",
        "line1": "Main 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    "delivery_method": "standard",
    "payment_token": "tok_approve",
}


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with edge_client(
        "order-service", api_keys=API_KEYS, tracking_token_secret=SecretStr(TRACKING_SECRET)
    ) as client:
        client.headers["X-API-Key"] = OPS_KEY
        yield client


@pytest.mark.parametrize(
    "field",
    [
        "customer.customer_id",
        "customer.name",
        "customer.email",
        "external_reference",
        "shipping_address.name",
        "shipping_address.line1",
        "shipping_address.city",
        "shipping_address.postal_code",
        "billing_address.line1",
        "payment_token",
    ],
)
@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["nul", "lone-surrogate"])
async def test_an_order_with_text_postgresql_cannot_store_is_422_naming_the_field(
    client: httpx.AsyncClient, field: str, bad: str
) -> None:
    value = "a" + bad + "b@example.com" if field == "customer.email" else "ab" + bad + "c"
    refused = await client.post("/orders", **json_body(changed(ORDER, field, value)))
    assert named_fields(refused) == [field]
    assert reached_a_dependency(await client.post("/orders", **json_body(ORDER)))


@pytest.mark.parametrize("price", [2**63, 2**53])
async def test_amounts_past_the_limit_are_422_and_so_is_a_total_past_it(client: httpx.AsyncClient, price: int) -> None:
    refused = await client.post("/orders", json=changed(ORDER, "lines.0.unit_price_minor", price))
    assert named_fields(refused) == ["lines.0.unit_price_minor"]
    # The line's price fits, its total does not: 2 x 2^52 = 2^53.
    total = await client.post("/orders", json=changed(ORDER, "lines.0.unit_price_minor", 2**52))
    assert named_fields(total) == ["lines"]
    fits = await client.post("/orders", json=changed(ORDER, "lines.0.unit_price_minor", 2**52 - 1))
    assert reached_a_dependency(fits)


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("cancel", "reason", {"reason": "changed my mind"}),
        ("cancel", "requested_by", {"reason": "changed my mind", "requested_by": "support"}),
        ("hold", "reason", {"reason": "fraud check", "held_by": "ops"}),
        ("hold", "held_by", {"reason": "fraud check", "held_by": "ops"}),
        ("release-hold", "released_by", {"released_by": "ops", "note": "checked"}),
        ("release-hold", "note", {"released_by": "ops", "note": "checked"}),
        ("actions", "operator", {"action": "retry", "operator": "ops", "note": "again"}),
        ("actions", "note", {"action": "retry", "operator": "ops", "note": "again"}),
        ("actions", "refund", {"action": "retry", "operator": "ops", "note": "again", "refund": "r-1"}),
        ("returns", "reason", {"lines": [{"sku": "SKU-1", "quantity": 1}], "reason": "too small"}),
    ],
)
async def test_commands_on_an_order_refuse_nul_in_their_text(
    client: httpx.AsyncClient, path: str, field: str, body: dict[str, Any]
) -> None:
    url = f"/orders/{uuid4()}/{path}"
    assert named_fields(await client.post(url, json=changed(body, field, "x\x00y"))) == [field]
    assert reached_a_dependency(await client.post(url, json=body))


@pytest.mark.parametrize(
    ("url", "field", "good"),
    [
        ("/orders?customer_id=c%00d", "customer_id", "/orders?customer_id=c-1"),
        ("/orders?cursor=ab%00cd", "cursor", None),
        ("/orders?placed_from=0001-01-01T00:00:00%2B01:00", "placed_from", "/orders?placed_from=2026-01-01T00:00:00Z"),
        ("/orders?placed_to=9999-12-31T23:59:59-05:00", "placed_to", "/orders?placed_to=2026-01-01T00:00:00Z"),
        ("/orders/not-an-order-id", "order_id", f"/orders/{uuid4()}"),
        ("/orders/ab%00cd/tracking", "order_id", None),
        (f"/orders/{uuid4()}/tracking?token=a%00b", "token", f"/orders/{uuid4()}/tracking?token=ab"),
    ],
)
async def test_query_and_path_parameters_are_validated(
    client: httpx.AsyncClient, url: str, field: str, good: str | None
) -> None:
    assert named_fields(await client.get(url)) == [field]
    if good is not None:
        assert reached_a_dependency(await client.get(good))


async def test_a_crafted_cursor_far_in_the_past_is_refused_not_sent_to_the_database(client: httpx.AsyncClient) -> None:
    from order_service.queries import encode_cursor

    # What a client could build by hand: the format is plain base64 of JSON.
    cursor = encode_cursor(__import__("datetime").datetime.fromisoformat("0001-01-01T00:00:00+01:00"), uuid4())
    assert named_fields(await client.get("/orders", params={"cursor": cursor})) == ["cursor"]


async def test_a_tracking_token_with_non_ascii_characters_is_just_a_wrong_token() -> None:
    auth = Authenticator(API_KEYS_ADAPTER.validate_json(API_KEYS), TRACKING_SECRET)
    order_id = uuid4()
    # hmac.compare_digest raises TypeError for non-ASCII str: that was a 503 without credentials.
    assert auth.valid_tracking_token(order_id, "ÿé-not-a-token") is False
    assert auth.valid_tracking_token(order_id, auth.tracking_token(order_id)) is True


async def test_a_return_with_a_non_ascii_token_is_404_before_its_body_is_read(client: httpx.AsyncClient) -> None:
    url = f"/orders/{uuid4()}/returns"
    body = {"lines": [{"sku": "SKU-1", "quantity": 1}], "reason": "too small"}
    refused = await client.post(url, params={"token": "ÿé"}, json={"not": "a return"}, headers={"X-API-Key": ""})
    assert (refused.status_code, refused.json()["error"]) == (404, "order_not_found")
    assert reached_a_dependency(await client.post(url, json=body))
