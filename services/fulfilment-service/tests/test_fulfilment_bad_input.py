"""Bad input never reaches fulfilment-service's database: each is a 422 naming the field (or a 401 for a
signature that cannot be right), and the same request with a good value does reach the database (a 503
here, where the database is away)."""

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio

from oms_runtime.testing_http import changed, edge_client, json_body, named_fields, reached_a_dependency

OPS_KEY = "edge-ops-key-0123456789"
API_KEYS = json.dumps([{"name": "edge-ops", "key": OPS_KEY, "role": "ops"}])
SECRET = "edge-dhl-secret-0123456789"
UPDATE = {"tracking_number": "JD0001", "status": "in_transit", "occurred_at": "2026-03-10T12:00:00+01:00"}


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with edge_client("fulfilment-service", api_keys=API_KEYS, carrier_webhook_secrets={"DHL": SECRET}) as client:
        client.headers["X-API-Key"] = OPS_KEY
        yield client


BODIES: list[tuple[str, dict[str, Any], str, Any]] = [
    ("/carriers/dhl/updates", UPDATE, "tracking_number", "JD\x000001"),
    ("/carriers/dhl/updates", {**UPDATE, "location": "Berlin"}, "location", "Ber\ud800lin"),
    ("/carriers/dhl/updates", {**UPDATE, "reason": "not home"}, "reason", "not\x00home"),
    ("/carriers/dhl/updates", {**UPDATE, "event_id": "ev-1"}, "event_id", "ev\x001"),
    ("/carriers/dhl/updates", UPDATE, "occurred_at", "0001-01-01T00:00:00+05:00"),
    ("/carriers/dhl/updates", UPDATE, "occurred_at", "9999-12-31T23:59:59-05:00"),
    (
        f"/returns/{uuid4()}/inspect",
        {"lines": [{"sku": "SKU-1", "warehouse_id": "WH-1", "sellable": 1}]},
        "lines.0.warehouse_id",
        "WH\x001",
    ),
    (f"/shipments/{uuid4()}/picks", {"lines": [{"sku": "SKU-1", "quantity": 1}]}, "lines.0.quantity", 2**31),
]


@pytest.mark.parametrize(("url", "body", "field", "bad"), BODIES, ids=[f"{b[0]}:{b[2]}" for b in BODIES])
async def test_bodies_with_values_the_database_cannot_hold_are_422_naming_the_field(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], field: str, bad: Any
) -> None:
    assert named_fields(await client.post(url, **json_body(changed(body, field, bad)))) == [field]
    assert reached_a_dependency(await client.post(url, json=body))


@pytest.mark.parametrize(
    ("url", "field", "good"),
    [
        ("/warehouses/WH%001/pick-lists", "warehouse_id", "/warehouses/WH-1/pick-lists"),
        ("/warehouses/WH-1/pick-lists?limit=9223372036854775808", "limit", "/warehouses/WH-1/pick-lists?limit=5"),
        ("/shipments/not-a-shipment-id", "shipment_id", f"/shipments/{uuid4()}"),
    ],
)
async def test_path_and_query_parameters_are_validated(
    client: httpx.AsyncClient, url: str, field: str, good: str
) -> None:
    assert named_fields(await client.get(url)) == [field]
    assert reached_a_dependency(await client.get(good))


async def test_a_carrier_path_that_is_no_name_is_422(client: httpx.AsyncClient) -> None:
    assert named_fields(await client.post("/carriers/dh%00l/updates", json=UPDATE)) == ["carrier"]


async def test_a_signature_with_non_ascii_characters_is_a_wrong_signature(client: httpx.AsyncClient) -> None:
    raw = json.dumps(UPDATE).encode()

    def signed_with(signature: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"X-API-Key", b""), (b"Content-Type", b"application/json"), (b"X-Carrier-Signature", signature)]

    wrong = await client.post("/carriers/dhl/updates", content=raw, headers=signed_with("sha256=ÿé".encode("latin-1")))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthenticated")
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    right = await client.post("/carriers/dhl/updates", content=raw, headers=signed_with(signature.encode()))
    assert reached_a_dependency(right)
