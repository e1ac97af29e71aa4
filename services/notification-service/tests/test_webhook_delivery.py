"""Webhooks on the real PostgreSQL with a real HTTP receiver: events through the runtime's processor (inbox,
the type-header filter), the sender's rounds with a test clock, and the ops API in process.

Once per subscription and event, signed, in order per subject, retried, given up, redelivered, an endpoint
disabled and enabled again, a target refused at delivery time (DNS rebinding), and the one at-least-once
case (a crash between the 2xx and its recording)."""

import ipaddress
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from standardwebhooks.webhooks import Webhook

from notification_service.webhooks.domain import IpAddress, RetryPolicy, new_secret
from notification_service.webhooks.handlers import WantedTypes, WebhookHandlers
from notification_service.webhooks.http_client import Resolver, system_resolver, webhook_client
from notification_service.webhooks.repository import WebhookRepository
from notification_service.webhooks.routes import webhook_router
from notification_service.webhooks.sender import WebhookSender
from notification_service.webhooks.tables import metadata
from notification_service.webhooks.testing import LocalWebhookReceiver, ReceivedRequest
from oms_events import default_registry
from oms_events.cloudevents import STRUCTURED_CONTENT_TYPE
from oms_events.messages import ContractMessage, OrderConfirmed, OrderPlaced, OrderShipped
from oms_events.routes import WEBHOOKS_GROUP
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator, ServiceApi
from oms_runtime.messaging import MessageProcessor, Outcome, SourceRecord
from oms_runtime.outbox import kafka_headers
from oms_runtime.testing import RecordingDeadLetters, throwaway_schema

OPS_KEY = "test-ops-key-0123456789"
CHANNEL_KEY = "test-web-key-0123456789"
KEYS = json.dumps(
    [
        {"name": "integrations-team", "key": OPS_KEY, "role": "ops"},
        {"name": "web", "key": CHANNEL_KEY, "role": "channel", "channel": "web"},
    ]
)
POLICY = RetryPolicy(base_s=1.0, max_s=4.0, retry_for=timedelta(minutes=10), disable_after=timedelta(minutes=5))

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Webhooks:
    """The module's parts on one schema, as the composition root wires them."""

    def __init__(
        self,
        db: Database,
        resolver: Resolver = system_resolver,
        *,
        allow_private: bool = True,
        policy: RetryPolicy = POLICY,
    ) -> None:
        self.db = db
        self.clock = Clock()
        self.repository = WebhookRepository()
        self.sender = WebhookSender(
            db,
            self.repository,
            webhook_client(timeout_s=5, concurrency=4, allow_private=allow_private, resolver=resolver),
            policy,
            clock=self.clock,
            lease_s=60,
            concurrency=4,
            poll_interval_s=1,
        )
        self.wanted = WantedTypes(db, self.repository)
        self.dead_letters = RecordingDeadLetters(WEBHOOKS_GROUP)
        self.processor = MessageProcessor(
            consumer=WEBHOOKS_GROUP,
            producer_name="notification-service",
            db=db,
            registry=default_registry(),
            handlers=WebhookHandlers(self.repository, clock=self.clock, wake=lambda: None).handler_map(self.wanted),
            dead_letters=self.dead_letters,
            max_attempts=2,
            retry_backoff_s=0.01,
        )
        app = ServiceApi(title="test")
        app.include_router(
            webhook_router(
                db,
                self.repository,
                ApiKeyAuthenticator.from_json(KEYS),
                self.clock,
                resolver,
                allow_private=allow_private,
                subscriptions_changed=self.wanted.refresh,
                wake=lambda: None,
            )
        )
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notification", headers={"X-API-Key": OPS_KEY}
        )
        self._offset = 0

    async def subscribe(self, url: str, *types: str, secret: str | None = None) -> tuple[str, str]:
        secret = secret or new_secret()
        response = await self.api.post(
            "/webhooks/subscriptions", json={"url": url, "event_types": list(types), "secret": secret}
        )
        assert response.status_code == 201, response.text
        return response.json()["id"], secret

    def record(self, message: ContractMessage) -> SourceRecord:
        envelope = default_registry().wrap(message, producer="order-service")
        self._offset += 1
        headers = tuple((k, v.encode()) for k, v in kafka_headers(envelope).items())
        return SourceRecord(message.topic, 0, self._offset, message.key.encode(), envelope.to_bytes(), headers)

    async def consume(self, *messages: ContractMessage) -> list[Outcome]:
        return await self.processor.process_batch([self.record(m) for m in messages])

    async def deliveries(self, subscription_id: str, **params: Any) -> dict[str, Any]:
        response = await self.api.get(f"/webhooks/subscriptions/{subscription_id}/deliveries", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def run_rounds(self) -> None:
        while await self.sender.round():
            pass

    async def close(self) -> None:
        await self.api.aclose()
        await self.sender.close()


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_webhooks", metadata) as database:
        yield database


@pytest_asyncio.fixture
async def hooks(db: Database) -> AsyncIterator[Webhooks]:
    async with db.transaction() as session:
        from sqlalchemy import text

        await session.execute(text("DELETE FROM webhook_subscriptions"))
    webhooks = Webhooks(db)
    await webhooks.wanted.refresh()
    yield webhooks
    await webhooks.close()


@pytest.fixture
def receiver() -> Iterator[LocalWebhookReceiver]:
    with LocalWebhookReceiver() as r:
        yield r


def placed_and_confirmed() -> tuple[OrderPlaced, OrderConfirmed]:
    from oms_events.values import Address, Channel, Customer, DeliveryMethod, OrderLine

    order_id = uuid4()
    placed = OrderPlaced(
        order_id=order_id,
        channel=Channel.WEB,
        external_reference="WEB-1",
        customer=Customer(customer_id="C-1", name="Jane Doe", email="jane.doe@example.com", phone=None),
        lines=[OrderLine(sku="SKU-1", quantity=1, unit_price_minor=1250)],
        currency="EUR",
        total_minor=1250,
        shipping_address=Address(name="Jane Doe", line1="Main St 1", city="Berlin", postal_code="10115", country="DE"),
        delivery_method=DeliveryMethod.STANDARD,
    )
    confirmed = OrderConfirmed(order_id=order_id, payment_id=uuid4(), amount_minor=1250, currency="EUR")
    return placed, confirmed


def shipped(order_id: Any) -> OrderShipped:
    return OrderShipped(
        order_id=order_id,
        shipment_id=uuid4(),
        warehouse_id="WH-BER",
        carrier="DHL",
        tracking_number="JJD000390007713",
        tracking_url="https://tracking.example/JJD000390007713",
        estimated_delivery=datetime(2026, 12, 8, tzinfo=UTC).date(),
    )


def verified(request: ReceivedRequest, secret: str) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_each_event_once_per_subscription_signed_as_a_cloudevent(
    hooks: Webhooks, receiver: LocalWebhookReceiver
) -> None:
    sub_id, secret = await hooks.subscribe(receiver.url + "/erp", "OrderPlaced", "OrderConfirmed")
    listed = (await hooks.api.get("/webhooks/subscriptions")).json()["subscriptions"]
    assert [s["id"] for s in listed] == [sub_id]
    assert "secret" not in listed[0]
    assert secret not in json.dumps(listed)
    placed, confirmed = placed_and_confirmed()
    records = [hooks.record(placed), hooks.record(confirmed)]
    assert await hooks.processor.process_batch(records) == [Outcome.PROCESSED, Outcome.PROCESSED]
    await hooks.run_rounds()
    got = receiver.received()
    assert [r.path for r in got] == ["/erp", "/erp"]
    events = [verified(r, secret) for r in got]
    assert [e["type"] for e in events] == ["example.oms.OrderPlaced.v1", "example.oms.OrderConfirmed.v1"]
    assert {e["subject"] for e in events} == {str(placed.order_id)}
    assert all(r.headers["content-type"] == STRUCTURED_CONTENT_TYPE for r in got)
    assert [r.headers["webhook-id"] for r in got] == [e["id"] for e in events]
    assert events[0]["data"]["external_reference"] == "WEB-1"

    # The same records again (Kafka redelivers after a crash): the inbox, and the (subscription, event) key.
    assert await hooks.processor.process_batch(records) == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    await hooks.run_rounds()
    assert len(receiver.received()) == 2

    log = await hooks.deliveries(sub_id)
    assert [d["event_type"] for d in log["deliveries"]] == ["OrderConfirmed", "OrderPlaced"]
    first = log["deliveries"][1]
    assert first["status"] == "delivered"
    assert first["attempts"] == 1
    assert first["last_http_status"] == 200
    assert first["attempt_log"][0]["outcome"] == "delivered"
    assert first["attempt_log"][0]["duration_ms"] >= 0
    page = await hooks.deliveries(sub_id, limit=1)
    assert len(page["deliveries"]) == 1
    assert page["next_cursor"]
    rest = await hooks.deliveries(sub_id, limit=1, cursor=page["next_cursor"])
    assert rest["deliveries"][0]["event_type"] == "OrderPlaced"
    assert rest["next_cursor"] is None


async def test_types_nobody_wants_are_skipped_before_parsing(hooks: Webhooks, receiver: LocalWebhookReceiver) -> None:
    placed, _ = placed_and_confirmed()
    record = hooks.record(placed)
    unreadable = SourceRecord(record.topic, 0, 99, record.key, b"\xff not json", record.headers)
    # No subscription: not even parsed, so not dead-lettered.
    assert await hooks.processor.process(unreadable) == Outcome.SKIPPED
    assert hooks.dead_letters.sent == []
    await hooks.subscribe(receiver.url, "OrderPlaced")
    assert await hooks.processor.process(unreadable) == Outcome.DEAD_LETTERED


async def test_in_order_per_subject_while_other_subjects_go_on(hooks: Webhooks, receiver: LocalWebhookReceiver) -> None:
    _, secret = await hooks.subscribe(receiver.url, "OrderPlaced", "OrderConfirmed")
    a_placed, a_confirmed = placed_and_confirmed()
    b_placed, _ = placed_and_confirmed()
    failing = {str(a_placed.order_id)}
    receiver.answer_with(lambda r: 500 if r.json()["subject"] in failing else 204)
    await hooks.consume(a_placed, a_confirmed, b_placed)
    await hooks.run_rounds()
    # Subjects are delivered concurrently: the order between A and B is not promised, only within each.
    assert sorted((e["subject"], e["type"]) for e in (verified(r, secret) for r in receiver.received())) == sorted(
        [
            (str(a_placed.order_id), "example.oms.OrderPlaced.v1"),
            (str(b_placed.order_id), "example.oms.OrderPlaced.v1"),
        ]
    )
    # A's placement is retried (and fails again); its confirmation waits behind it, never attempted.
    hooks.clock.advance(5)
    await hooks.run_rounds()

    def a_types() -> list[str]:
        return [e["type"] for e in (r.json() for r in receiver.received()) if e["subject"] == str(a_placed.order_id)]

    assert a_types() == ["example.oms.OrderPlaced.v1"] * 2
    failing.clear()
    hooks.clock.advance(10)
    await hooks.run_rounds()
    assert a_types() == ["example.oms.OrderPlaced.v1"] * 3 + ["example.oms.OrderConfirmed.v1"]


async def test_a_failing_endpoint_is_disabled_and_enabled_again_gets_what_waited(
    hooks: Webhooks, receiver: LocalWebhookReceiver
) -> None:
    sub_id, _ = await hooks.subscribe(receiver.url, "OrderPlaced", "OrderConfirmed")
    receiver.answer_with(lambda _: 503)
    placed, confirmed = placed_and_confirmed()
    await hooks.consume(placed)
    for _ in range(80):  # 5 s steps: the endpoint fails for longer than disable_after (5 min)
        await hooks.run_rounds()
        hooks.clock.advance(5)
    subscription = (await hooks.api.get(f"/webhooks/subscriptions/{sub_id}")).json()
    assert subscription["status"] == "disabled"
    assert "HTTP 503" in subscription["disabled_reason"]
    attempts_when_disabled = len(receiver.received())
    await hooks.consume(confirmed)  # still queued while disabled
    hooks.clock.advance(3600)
    await hooks.run_rounds()
    assert len(receiver.received()) == attempts_when_disabled, "a disabled endpoint is not called"

    receiver.answer_with(lambda _: 200)
    enabled = await hooks.api.post(f"/webhooks/subscriptions/{sub_id}/enable")
    assert enabled.status_code == 200
    assert enabled.json()["status"] == "enabled"
    assert enabled.json()["failing_since"] is None
    await hooks.run_rounds()
    delivered = [r.json()["type"] for r in receiver.received()[attempts_when_disabled:]]
    assert delivered == ["example.oms.OrderPlaced.v1", "example.oms.OrderConfirmed.v1"]
    log = (await hooks.deliveries(sub_id))["deliveries"]
    assert [d["status"] for d in log] == ["delivered", "delivered"]
    assert log[1]["attempts"] == attempts_when_disabled + 1


async def test_given_up_lets_the_next_go_and_redelivery_sends_it_again(
    db: Database, receiver: LocalWebhookReceiver
) -> None:
    # Disabled only after the delivery's window: this endpoint fails one event, not everything.
    hooks = Webhooks(db, policy=RetryPolicy(1.0, 4.0, timedelta(minutes=10), disable_after=timedelta(hours=1)))
    try:
        await given_up_then_redelivered(hooks, receiver)
    finally:
        await hooks.close()


async def given_up_then_redelivered(hooks: Webhooks, receiver: LocalWebhookReceiver) -> None:
    sub_id, secret = await hooks.subscribe(receiver.url, "OrderPlaced", "OrderConfirmed")
    placed, confirmed = placed_and_confirmed()
    receiver.answer_with(lambda r: 400 if r.json()["type"].endswith("OrderPlaced.v1") else 200)
    await hooks.consume(placed, confirmed)
    for _ in range(8):
        await hooks.run_rounds()
        hooks.clock.advance(200)  # past the 10-minute window after a few attempts; succeeding resets nothing
    log = (await hooks.deliveries(sub_id))["deliveries"]
    by_type = {d["event_type"]: d for d in log}
    assert by_type["OrderPlaced"]["status"] == "failed"
    assert by_type["OrderPlaced"]["last_error"].startswith("HTTP 400")
    assert by_type["OrderConfirmed"]["status"] == "delivered"

    pending_id = by_type["OrderConfirmed"]["id"]
    receiver.answer_with(lambda _: 200)
    redeliver = f"/webhooks/subscriptions/{sub_id}/deliveries/{by_type['OrderPlaced']['id']}/redeliver"
    assert (await hooks.api.post(redeliver)).status_code == 202
    assert (await hooks.api.post(redeliver)).status_code == 409  # not settled yet
    await hooks.run_rounds()
    last = receiver.received()[-1]
    assert verified(last, secret)["type"] == "example.oms.OrderPlaced.v1"
    assert last.headers["webhook-id"] == str(by_type["OrderPlaced"]["webhook_id"])
    missing = await hooks.api.post(f"/webhooks/subscriptions/{sub_id}/deliveries/{uuid4()}/redeliver")
    assert missing.status_code == 404
    assert missing.json()["error"] == "delivery_not_found"
    assert pending_id


async def test_a_crash_between_the_2xx_and_its_record_sends_it_again_with_the_same_id(
    hooks: Webhooks, receiver: LocalWebhookReceiver
) -> None:
    sub_id, _ = await hooks.subscribe(receiver.url, "OrderPlaced")
    placed, _ = placed_and_confirmed()
    await hooks.consume(placed)
    # What a round does up to the 2xx, and then the process dies (nothing recorded).
    now = hooks.clock()
    async with hooks.db.transaction() as session:
        claimed = await hooks.repository.claim(session, now, now + timedelta(seconds=60), 4)
    assert len(claimed) == 1
    await hooks.sender._attempt(claimed[0])
    assert len(receiver.received()) == 1
    await hooks.run_rounds()
    assert len(receiver.received()) == 1, "leased: not sent again while the lease runs"
    hooks.clock.advance(61)
    await hooks.run_rounds()
    first, second = receiver.received()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert (await hooks.deliveries(sub_id))["deliveries"][0]["status"] == "delivered"


async def test_a_target_that_rebinds_to_a_private_address_is_refused_at_delivery(db: Database) -> None:
    answers: list[IpAddress] = [ipaddress.ip_address("93.184.215.14")]

    async def resolver(host: str, port: int) -> list[IpAddress]:
        return list(answers)

    hooks = Webhooks(db, resolver, allow_private=False)
    try:
        refused = await hooks.api.post(
            "/webhooks/subscriptions",
            json={"url": "http://erp.example/hook", "event_types": ["OrderPlaced"], "secret": new_secret()},
        )
        assert refused.status_code == 422
        assert refused.json()["fields"][0]["field"] == "url"
        sub_id, _ = await hooks.subscribe("https://erp.example/hook", "OrderPlaced")
        answers[:] = [ipaddress.ip_address("127.0.0.1")]  # DNS now answers with loopback
        placed, _ = placed_and_confirmed()
        await hooks.consume(placed)
        await hooks.run_rounds()
        attempt = (await hooks.deliveries(sub_id))["deliveries"][0]["attempt_log"][0]
        assert attempt["outcome"] == "refused"
        assert "loopback" in attempt["error"]
        answers[:] = [ipaddress.ip_address("10.0.0.7")]
        private = await hooks.api.post(
            "/webhooks/subscriptions",
            json={"url": "https://erp.example/hook", "event_types": ["OrderPlaced"], "secret": new_secret()},
        )
        assert private.status_code == 422
        assert "private" in private.json()["fields"][0]["message"]
    finally:
        await hooks.close()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:1/x", "event_types": ["OrderPlacedd"], "secret": new_secret()}, "event_types.0"),
        ({"url": "http://127.0.0.1:1/x", "event_types": ["ReserveStock"], "secret": new_secret()}, "event_types.0"),
        ({"url": "http://127.0.0.1:1/x", "event_types": [], "secret": new_secret()}, "event_types"),
        ({"url": "http://127.0.0.1:1/x", "event_types": ["OrderPlaced"], "secret": "whsec_" + "*" * 40}, "secret"),
        ({"url": "ftp://127.0.0.1/x", "event_types": ["OrderPlaced"], "secret": new_secret()}, "url"),
        ({"url": "http://[::1/x", "event_types": ["OrderPlaced"], "secret": new_secret()}, "url"),
        ({"url": "http://" + "a" * 70 + ".example/x", "event_types": ["OrderPlaced"], "secret": new_secret()}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x", "event_types": ["OrderPlaced"], "secret": new_secret()}, "url"),
    ],
)
async def test_bad_subscriptions_name_the_field(hooks: Webhooks, body: dict[str, Any], field: str) -> None:
    response = await hooks.api.post("/webhooks/subscriptions", json=body)
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == [field]
    assert body["secret"] not in response.text


async def test_ops_keys_only_and_unknown_subscriptions(hooks: Webhooks) -> None:
    response = await hooks.api.get("/webhooks/subscriptions", headers={"X-API-Key": CHANNEL_KEY})
    assert response.status_code == 403
    unknown = uuid4()
    assert (await hooks.api.get(f"/webhooks/subscriptions/{unknown}")).status_code == 404
    assert (await hooks.api.delete(f"/webhooks/subscriptions/{unknown}")).status_code == 404
    assert (await hooks.api.post(f"/webhooks/subscriptions/{unknown}/enable")).status_code == 404
    assert (await hooks.api.get(f"/webhooks/subscriptions/{unknown}/deliveries")).status_code == 404


async def test_unsubscribed_types_stop_being_queued(hooks: Webhooks, receiver: LocalWebhookReceiver) -> None:
    sub_id, _ = await hooks.subscribe(receiver.url, "OrderShipped")
    placed, _ = placed_and_confirmed()
    assert hooks.wanted("OrderShipped")
    assert not hooks.wanted("OrderPlaced")
    assert (await hooks.api.delete(f"/webhooks/subscriptions/{sub_id}")).status_code == 204
    assert not hooks.wanted("OrderShipped")
    assert await hooks.consume(shipped(placed.order_id)) == [Outcome.SKIPPED]
