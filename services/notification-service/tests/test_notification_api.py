"""notification-service's HTTP API through httpx (ASGI, in process) on the real PostgreSQL (a throwaway
schema): preferences, history per order and per customer, keys, and errors that name the field."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import jsonschema_rs
import pytest
import pytest_asyncio

from notification_service.adapters.batch_writes import insert_deliveries
from notification_service.adapters.repository import NewDelivery, NotificationRepository
from notification_service.adapters.tables import metadata
from notification_service.domain.notifications import NotificationKind, notification_id_for
from notification_service.entrypoints.http import create_app
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.testing import throwaway_schema

OPS_KEY = "test-ops-key-0123456789"
CHANNEL_KEY = "test-web-key-0123456789"
KEYS = json.dumps(
    [
        {"name": "support-desk", "key": OPS_KEY, "role": "ops"},
        {"name": "web", "key": CHANNEL_KEY, "role": "channel", "channel": "web"},
    ]
)
NOW = datetime(2025, 3, 12, 10, 0, tzinfo=UTC)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_notification_api", metadata) as database:
        yield database


@pytest_asyncio.fixture
async def api(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db, NotificationRepository(), ApiKeyAuthenticator.from_json(KEYS), lambda: NOW)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://notification", headers={"X-API-Key": OPS_KEY}
    ) as c:
        yield c


def customer() -> str:
    return f"C-{uuid4().hex[:8]}"


async def test_defaults_until_the_customer_chooses(api: httpx.AsyncClient) -> None:
    who = customer()
    response = await api.get(f"/customers/{who}/preferences")
    assert response.status_code == 200
    body = response.json()
    assert body["customised"] is False
    assert (body["locale"], body["time_zone"], body["quiet_hours"], body["explicit"]) == (None, "UTC", None, {})
    assert body["channels"]["order_confirmation"] == {"email": True, "sms": False}
    assert body["channels"]["order_shipped"] == {"email": True, "sms": True}
    assert set(body["channels"]) == {k.value for k in NotificationKind}


async def test_put_then_get_preferences(api: httpx.AsyncClient, db: Database) -> None:
    who = customer()
    body = {
        "locale": "de-AT",
        "time_zone": "Europe/Vienna",
        "quiet_hours": {"start": "21:30", "end": "07:00"},
        "channels": {"order_confirmation": {"sms": True}, "order_shipped": {"email": False}},
    }
    response = await api.put(f"/customers/{who}/preferences", json=body)
    assert response.status_code == 200, response.text
    again = (await api.get(f"/customers/{who}/preferences")).json()
    assert again == response.json()
    assert again["customised"] is True
    assert (again["locale"], again["time_zone"]) == ("de-AT", "Europe/Vienna")
    assert again["quiet_hours"] == {"start": "21:30:00", "end": "07:00:00"}
    assert again["channels"]["order_confirmation"] == {"email": True, "sms": True}
    assert again["channels"]["order_shipped"] == {"email": False, "sms": True}
    assert again["explicit"] == {"order_confirmation": {"sms": True}, "order_shipped": {"email": False}}
    # What the senders read is what the API wrote.
    async with db.transaction() as session:
        prefs = await NotificationRepository().preferences(session, who)
    assert prefs.wants(NotificationKind.ORDER_CONFIRMATION, "sms")
    assert prefs.opted_out(NotificationKind.ORDER_SHIPPED, "email")
    assert prefs.sms_held_until(datetime(2025, 3, 12, 22, 0, tzinfo=UTC)) == datetime(2025, 3, 13, 6, 0, tzinfo=UTC)

    # The answer is what the OpenAPI document says, formats included (a `time` without an offset was not).
    document = create_app(db, NotificationRepository(), ApiKeyAuthenticator.from_json(KEYS), lambda: NOW).openapi()
    schema = {
        "$ref": "#/components/schemas/PreferencesView",
        "components": document["components"],
    }
    validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    assert [error.message for error in validator.iter_errors(again)] == []

    # PUT replaces the whole set: back to the defaults.
    reset = await api.put(f"/customers/{who}/preferences", json={})
    assert reset.status_code == 200
    assert reset.json()["explicit"] == {}
    assert reset.json()["quiet_hours"] is None
    assert reset.json()["customised"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"locale": "../../etc"}, "locale"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"channels": {"newsletter": {"email": True}}}, "channels.newsletter.[key]"),
        ({"channels": {"order_shipped": {"fax": True}}}, "channels.order_shipped.fax"),
        ({"channels": {"order_shipped": {"sms": "sometimes"}}}, "channels.order_shipped.sms"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_preferences_name_the_field(api: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    response = await api.put(f"/customers/{customer()}/preferences", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "validation_failed"
    assert field in [f["field"] for f in error["fields"]], error


async def test_keys(api: httpx.AsyncClient) -> None:
    path = f"/customers/{customer()}/preferences"
    assert (await api.get(path, headers={"X-API-Key": ""})).json()["error"] == "unauthenticated"
    assert (await api.get(path, headers={"X-API-Key": "not-a-key-at-all-000"})).status_code == 401
    forbidden = await api.put(path, json={}, headers={"X-API-Key": CHANNEL_KEY})
    assert (forbidden.status_code, forbidden.json()["error"]) == (403, "forbidden")
    assert (await api.get(f"/orders/{uuid4()}/notifications", headers={"X-API-Key": CHANNEL_KEY})).status_code == 403


async def add(db: Database, order_id: UUID, who: str, kind: NotificationKind, channel: str, minutes: int) -> UUID:
    event_id = uuid4()
    item = NewDelivery(
        notification_id=notification_id_for(event_id, channel),
        source_event_id=event_id,
        channel=channel,
        order_id=order_id,
        customer_id=who,
        kind=kind,
        dedupe_key=kind.value,
        event_context={},
        recipient_masked="j***@example.com" if channel == "email" else "+49*******67",
        status="pending",
        status_reason=None,
        due_at=NOW + timedelta(minutes=minutes),
    )
    async with db.transaction() as session:
        await insert_deliveries(session, [item])
    return item.notification_id


async def test_history_per_order_and_per_customer(api: httpx.AsyncClient, db: Database) -> None:
    who, first, second = customer(), uuid4(), uuid4()
    received = await add(db, first, who, NotificationKind.ORDER_RECEIVED, "email", 0)
    shipped_sms = await add(db, first, who, NotificationKind.ORDER_SHIPPED, "sms", 5)
    await add(db, second, who, NotificationKind.ORDER_RECEIVED, "email", 10)
    await add(db, uuid4(), customer(), NotificationKind.ORDER_RECEIVED, "email", 10)
    repository = NotificationRepository()
    async with db.transaction() as session:
        await repository.update(
            session, received, NOW, status="sent", sent_at=NOW, provider_message_id="Q1", attempts=1, locale="en"
        )
        await repository.update(session, shipped_sms, NOW, status="deferred", status_reason="quiet_hours")

    response = await api.get(f"/orders/{first}/notifications")
    assert response.status_code == 200
    history = response.json()["notifications"]
    assert [(n["kind"], n["channel"], n["status"]) for n in history] == [
        ("order_received", "email", "sent"),
        ("order_shipped", "sms", "deferred"),
    ]
    assert history[0]["sent_at"] == "2025-03-12T10:00:00Z"
    assert history[0]["provider_message_id"] == "Q1"
    assert history[0]["due_at"] is None
    assert history[1]["status_reason"] == "quiet_hours"
    assert history[1]["due_at"] == "2025-03-12T10:05:00Z"
    assert history[1]["recipient_masked"] == "+49*******67"
    for entry in history:
        assert "jane" not in json.dumps(entry)

    everything = (await api.get(f"/customers/{who}/notifications")).json()["notifications"]
    assert [n["order_id"] for n in everything] == [str(second), str(first), str(first)], "newest first"
    assert len((await api.get(f"/customers/{who}/notifications?limit=1")).json()["notifications"]) == 1
    bad = await api.get(f"/customers/{who}/notifications?limit=0")
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "limit"
    assert (await api.get("/orders/not-a-uuid/notifications")).json()["fields"][0]["field"] == "order_id"
    assert (await api.get(f"/orders/{uuid4()}/notifications")).json() == {"notifications": []}
