"""payment-service's HTTP API on a real PostgreSQL: a payment's history, the reconciliation report, API keys,
and the settings that configure the risk rules."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio

from oms_events import default_registry
from oms_events.messages import CapturePayment, RefundPayment
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.testing import HandlerHarness
from payment_service.adapters.payment_store import PaymentStore
from payment_service.adapters.simulated_gateway import SimulatedGateway
from payment_service.domain.payment import payment_id_for
from payment_service.entrypoints.http import create_app
from payment_service.handlers import PaymentHandlers
from payment_service.main import PaymentSettings
from payment_service.queries import PaymentQueries

REGISTRY = default_registry()
OPS = "test-ops-key-0123456789"
WEB = "test-web-key-0123456789"
KEYS = json.dumps(
    [
        {"name": "ops", "key": OPS, "role": "ops"},
        {"name": "web", "key": WEB, "role": "channel", "channel": "web"},
    ]
)


@pytest_asyncio.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(PaymentQueries(db, EventStore(), REGISTRY), ApiKeyAuthenticator.from_json(KEYS))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://payment", headers={"X-API-Key": OPS}
    ) as http:
        yield http


def harness(db: Database) -> HandlerHarness:
    handlers = PaymentHandlers(SimulatedGateway(db), PaymentStore())
    return HandlerHarness(db, "payment-service", handlers.handler_map(), REGISTRY)


async def test_a_payments_history_lists_every_event_and_its_state(db: Database, client: httpx.AsyncClient) -> None:
    order_id = uuid4()
    h = harness(db)
    await h.send(
        CapturePayment(
            order_id=order_id,
            customer_id="c",
            amount_minor=9_000,
            currency="USD",
            payment_token="tok_visa",
            channel="store",
        )
    )
    refund = RefundPayment(
        order_id=order_id, payment_id=payment_id_for(order_id), amount_minor=2_000, currency="USD", reason="returned"
    )
    await h.send(refund)
    response = await client.get(f"/payments/{order_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "partially_refunded"
    assert (body["captured_minor"], body["refunded_minor"], body["refundable_minor"]) == (9_000, 2_000, 7_000)
    assert body["currency"] == "USD"
    assert [e["type"] for e in body["history"]] == ["PaymentAuthorised", "PaymentCaptured", "PaymentRefunded"]
    assert body["history"][1]["payload"]["channel"] == "store"
    assert "tok_visa" not in response.text

    today = datetime.now(UTC).date().isoformat()
    report = await client.get("/reconciliation", params={"date_from": today, "channel": "store", "currency": "USD"})
    assert report.status_code == 200, report.text
    [line] = report.json()["lines"]
    assert (line["channel"], line["currency"], line["day"]) == ("store", "USD", today)
    assert line["net_minor"] == line["captured_minor"] - line["refunded_minor"]
    assert line["captured_minor"] >= 9_000
    assert line["refunded_minor"] >= 2_000


async def test_an_unknown_payment_is_a_404_naming_the_error(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/payments/{uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"] == "payment_not_found"


async def test_the_api_is_for_ops_keys(client: httpx.AsyncClient) -> None:
    assert (await client.get("/reconciliation", headers={"X-API-Key": ""})).status_code == 401
    forbidden = await client.get("/reconciliation", headers={"X-API-Key": WEB})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "yesterday"}, "date_from"),
        ({"currency": "euro"}, "currency"),
    ],
)
async def test_bad_report_parameters_are_422s_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await client.get("/reconciliation", params=params)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == [field]


async def test_a_report_range_ending_before_it_starts_is_refused(client: httpx.AsyncClient) -> None:
    today = datetime.now(UTC).date()
    response = await client.get(
        "/reconciliation",
        params={"date_from": today.isoformat(), "date_to": (today - timedelta(days=1)).isoformat()},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_failed"


def test_risk_rules_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_REVIEW_ABOVE_MINOR", '{"EUR": 50000, "JPY": 80000}')
    monkeypatch.setenv("RISK_DECLINE_ABOVE_MINOR", '{"EUR": 200000}')
    monkeypatch.setenv("RISK_VELOCITY_MAX", "5")
    monkeypatch.setenv("RISK_COUNTRY_MISMATCH", "decline")
    rules = PaymentSettings().risk_rules()
    assert dict(rules.review_above_minor) == {"EUR": 50_000, "JPY": 80_000}
    assert dict(rules.decline_above_minor) == {"EUR": 200_000}
    assert (rules.velocity_max, rules.country_mismatch) == (5, "decline")
