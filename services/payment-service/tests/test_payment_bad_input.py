"""Bad input never reaches payment-service's database: each is a 422 naming the field, and the same
request with a good value does reach it (a 503 here, where the database is away)."""

import json
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio

from oms_runtime.testing_http import edge_client, named_fields, reached_a_dependency

OPS_KEY = "edge-ops-key-0123456789"
API_KEYS = json.dumps([{"name": "edge-ops", "key": OPS_KEY, "role": "ops"}])


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with edge_client("payment-service", api_keys=API_KEYS) as client:
        client.headers["X-API-Key"] = OPS_KEY
        yield client


@pytest.mark.parametrize(
    ("url", "field", "good"),
    [
        (
            "/reconciliation?date_from=2026-01-01&channel=we%00b",
            "channel",
            "/reconciliation?date_from=2026-01-01&channel=web",
        ),
        ("/reconciliation?date_from=0001-01-01", "date_from", "/reconciliation?date_from=2026-01-01"),
        (
            "/reconciliation?date_from=2026-12-01&date_to=9999-12-31",
            "date_to",
            "/reconciliation?date_from=2026-12-01",
        ),
        ("/reconciliation?date_from=2026-01-02&date_to=2026-01-01", "date_to", "/reconciliation?date_from=2026-01-01"),
        ("/reconciliation?currency=eur", "currency", "/reconciliation?currency=EUR"),
        ("/payments/not-an-order-id", "order_id", f"/payments/{uuid4()}"),
    ],
)
async def test_query_and_path_parameters_are_validated(
    client: httpx.AsyncClient, url: str, field: str, good: str
) -> None:
    assert named_fields(await client.get(url)) == [field]
    assert reached_a_dependency(await client.get(good))
