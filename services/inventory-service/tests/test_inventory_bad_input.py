"""Bad input never reaches inventory-service's database: each is a 422 naming the field, and the same
request with a good value does reach it (a 503 here, where the database is away)."""

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


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with edge_client("inventory-service", api_keys=API_KEYS) as client:
        client.headers["X-API-Key"] = OPS_KEY
        yield client


BODIES: list[tuple[str, str, dict[str, Any], str, Any]] = [
    # method, url, a good body, the field made bad, its bad value
    ("PUT", "/warehouses/WH-1", {"name": "Berlin", "location": "Berlin"}, "name", "Ber\x00lin"),
    ("PUT", "/warehouses/WH-1", {"name": "Berlin", "location": "Berlin"}, "location", "Ber\ud800lin"),
    (
        "POST",
        "/stock/adjustments",
        {"sku": "SKU-1", "warehouse_id": "WH-1", "quantity_change": -2, "reason": "damaged"},
        "reason",
        "dam\x00aged",
    ),
    (
        "POST",
        "/stock/adjustments",
        {"sku": "SKU-1", "warehouse_id": "WH-1", "quantity_change": -2, "reason": "damaged"},
        "quantity_change",
        2**31,
    ),
    (
        "POST",
        "/stock/adjustments",
        {"sku": "SKU-1", "warehouse_id": "WH-1", "quantity_change": -2, "reason": "damaged"},
        "quantity_change",
        -(2**31),
    ),
    (
        "POST",
        "/stock/adjustments",
        {"sku": "SKU-1", "warehouse_id": "WH-1", "quantity_change": -2, "reason": "damaged"},
        "warehouse_id",
        "WH\x001",
    ),
    (
        "POST",
        "/stock/receipts",
        {"sku": "SKU-1", "warehouse_id": "WH-1", "quantity": 5, "reference": "ASN-1"},
        "reference",
        "ASN\x001",
    ),
    (
        "POST",
        "/stock/receipts",
        {"sku": "SKU-1", "warehouse_id": "WH-1", "quantity": 5, "reference": "ASN-1"},
        "quantity",
        2**31,
    ),
    ("PUT", "/skus/SKU-1/unit-cost", {"unit_cost_minor": 250, "currency": "EUR"}, "unit_cost_minor", 2**63),
    ("PUT", "/stock/SKU-1/warehouses/WH-1/safety-stock", {"safety_stock": 5}, "safety_stock", 2**31),
    (
        "PUT",
        "/replenishment/policies/SKU-1/WH-1",
        {"reorder_point": 5, "reorder_quantity": 10, "lead_time_days": 3},
        "reorder_quantity",
        2**63,
    ),
    (
        "PUT",
        "/replenishment/policies/SKU-1/WH-1",
        {"reorder_point": 5, "reorder_quantity": 10, "lead_time_days": 3},
        "reorder_point",
        2**31,
    ),
    ("POST", f"/purchase-orders/{uuid4()}/receive", {"quantity": 5}, "quantity", 2**63),
]


@pytest.mark.parametrize(("method", "url", "body", "field", "bad"), BODIES, ids=[f"{b[1]}:{b[3]}" for b in BODIES])
async def test_bodies_with_values_the_database_cannot_hold_are_422_naming_the_field(
    client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any], field: str, bad: Any
) -> None:
    refused = await client.request(method, url, **json_body(changed(body, field, bad)))
    assert named_fields(refused) == [field]
    assert reached_a_dependency(await client.request(method, url, json=body))


@pytest.mark.parametrize(
    ("method", "url", "field", "good"),
    [
        ("GET", "/warehouses/WH%001/stock", "warehouse_id", "/warehouses/WH-1/stock"),
        ("DELETE", "/replenishment/policies/SKU-1/WH%001", "warehouse_id", "/replenishment/policies/SKU-1/WH-1"),
        ("GET", "/stock/SKU%001", "sku", "/stock/SKU-1"),
        ("GET", "/reservations/not-an-order-id", "order_id", f"/reservations/{uuid4()}"),
        ("GET", "/replenishment/policies?sku=SKU%001", "sku", "/replenishment/policies?sku=SKU-1"),
        ("GET", "/skus/SKU-1/forecast?through=0001-01-01", "through", "/skus/SKU-1/forecast?through=2026-01-01"),
        (
            "GET",
            "/skus/SKU-1/reorder-suggestion?lead_time_days=3&through=0001-01-01",
            "through",
            "/skus/SKU-1/reorder-suggestion?lead_time_days=3&through=2026-01-01",
        ),
        ("GET", "/reports/days-of-cover?through=0001-01-01", "through", "/reports/days-of-cover?through=2026-01-01"),
    ],
)
async def test_path_and_query_parameters_are_validated(
    client: httpx.AsyncClient, method: str, url: str, field: str, good: str
) -> None:
    assert named_fields(await client.request(method, url)) == [field]
    assert reached_a_dependency(await client.request(method, good))
