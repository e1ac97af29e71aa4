"""Bad input never reaches notification-service's database: each is a 422 naming the field (or a 401 for a
token that cannot be right), and the same request with a good value does reach the database (a 503 here,
where the database is away)."""

import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from oms_runtime.testing_http import changed, edge_client, json_body, named_fields, reached_a_dependency

OPS_KEY = "edge-ops-key-0123456789"
API_KEYS = json.dumps([{"name": "edge-ops", "key": OPS_KEY, "role": "ops"}])
WEBHOOK_TOKEN = "edge-sms-webhook-token-0123456789"
PREFERENCES = {"locale": "de-AT", "time_zone": "Europe/Vienna", "channels": {"order_shipped": {"sms": False}}}


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with edge_client(
        "notification-service", api_keys=API_KEYS, sms_webhook_token=SecretStr(WEBHOOK_TOKEN)
    ) as client:
        client.headers["X-API-Key"] = OPS_KEY
        yield client


@pytest.mark.parametrize(
    ("field", "bad"), [("locale", "de\x00AT"), ("time_zone", "Europe/Vi\x00enna"), ("locale", "\ud800")]
)
async def test_preferences_with_text_postgresql_cannot_store_are_422(
    client: httpx.AsyncClient, field: str, bad: str
) -> None:
    url = "/customers/c-1/preferences"
    assert named_fields(await client.put(url, **json_body(changed(PREFERENCES, field, bad)))) == [field]
    assert reached_a_dependency(await client.put(url, json=PREFERENCES))


@pytest.mark.parametrize(
    ("method", "url", "field", "good"),
    [
        ("GET", "/customers/c%001/preferences", "customer_id", "/customers/c-1/preferences"),
        ("GET", "/customers/c%001/notifications", "customer_id", "/customers/c-1/notifications"),
        ("GET", "/orders/not-an-order-id/notifications", "order_id", f"/orders/{uuid4()}/notifications"),
        ("POST", "/notifications/not-an-id/resend", "notification_id", None),
    ],
)
async def test_path_parameters_are_validated(
    client: httpx.AsyncClient, method: str, url: str, field: str, good: str | None
) -> None:
    assert named_fields(await client.request(method, url)) == [field]
    if good is not None:
        assert reached_a_dependency(await client.request(method, good))


REPORT: dict[str, Any] = {"id": "sms-1", "status": "undelivered", "error_code": "30003"}


@pytest.mark.parametrize("field", ["id", "error_code"])
async def test_an_sms_report_with_nul_is_422(client: httpx.AsyncClient, field: str) -> None:
    headers = {"X-Webhook-Token": WEBHOOK_TOKEN}
    refused = await client.post("/webhooks/sms/status", json=changed(REPORT, field, "x\x00y"), headers=headers)
    assert named_fields(refused) == [field]
    assert reached_a_dependency(await client.post("/webhooks/sms/status", json=REPORT, headers=headers))


async def test_a_webhook_token_with_non_ascii_characters_is_401_before_the_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    refused = await client.post(
        "/webhooks/sms/status", json={"not": "a report"}, headers=[(b"X-Webhook-Token", "ÿé".encode("latin-1"))]
    )
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthenticated")


async def test_quiet_hours_are_wall_clock_times_without_an_offset(client: httpx.AsyncClient) -> None:
    url = "/customers/c-1/preferences"
    offset = {"quiet_hours": {"start": "22:00+01:00", "end": "07:00"}}
    assert named_fields(await client.put(url, json=offset)) == ["quiet_hours.start"]
    assert reached_a_dependency(await client.put(url, json={"quiet_hours": {"start": "22:00", "end": "07:00"}}))
