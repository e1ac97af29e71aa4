"""notification-service end to end without Kafka: events through the runtime's message processor (inbox,
transaction, outbox) into the send log, and the dispatcher sending to a real SMTP server (aiosmtpd) and a
real local SMS provider over HTTP, on the real PostgreSQL (a throwaway schema). Time is a test clock, so
backoff and quiet hours are shown without sleeping.
"""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
import structlog
from notification_harness import CUSTOMER, PHONE, REGISTRY, RETRY_BASE_S, Crash, CrashAfterSending, Harness
from notification_smtp import parts

import notification_service.claims
import notification_service.dispatcher
import notification_service.handlers
import oms_runtime.messaging
from notification_service.adapters.http_sms import HttpSmsSender, SmsProviderConfig
from notification_service.adapters.tables import metadata
from notification_service.adapters.templates import TEMPLATES_DIR, TemplateRenderer
from notification_service.domain.notifications import (
    NotificationKind,
    NotifyingEvent,
    kind_for,
    message_id_for,
    notification_id_for,
    short_order_id,
)
from notification_service.domain.preferences import Preferences, QuietHours
from notification_service.entrypoints.http import create_app
from notification_service.main import SERVICE, NotificationSettings, build
from notification_service.testing import delivery_report
from oms_events.messages import (
    NotificationFailed,
    NotificationSent,
    OrderConfirmed,
    OrderPaymentDeclined,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentOutForDelivery,
)
from oms_events.routes import WEBHOOKS_GROUP
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.logging import configure_logging, get_logger
from oms_runtime.messaging import Outcome
from oms_runtime.testing import throwaway_schema

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_notification", metadata) as database:
        yield database


# ---------------------------------------------------------------- every message, once


async def test_every_message_by_email_and_the_urgent_ones_by_sms(
    harness: Harness, every_event: list[NotifyingEvent], placed: OrderPlaced
) -> None:
    envelopes = []
    for event in every_event:
        envelope, outcome = await harness.send(event)
        assert outcome is Outcome.PROCESSED, harness.dead_letters.sent
        envelopes.append(envelope)
    assert harness.smtp.received == [], "the consumer only writes the send log; the dispatcher sends"
    await harness.dispatch()

    ref = short_order_id(placed.order_id)
    mails = harness.mails(placed.order_id)
    assert [m["X-OMS-Notification-Kind"] for m in mails] == [kind_for(e).value for e in every_event]
    assert {m["X-OMS-Notification-Kind"] for m in mails} == {k.value for k in NotificationKind}
    assert [m["Subject"] for m in mails] == [
        f"We received your order {ref}",
        f"Your order {ref} is confirmed",
        f"Payment for your order {ref} failed",
        f"We could not complete your order {ref}",
        f"Your order {ref} has been cancelled",
        f"Your order {ref} has shipped",
        f"Your order {ref} arrives today",
        f"Your order {ref} has been delivered",
        f"Refund issued for your order {ref}",
        f"Refund issued for your order {ref}",
        f"Refund issued for your order {ref}",
        f"We could not deliver your order {ref}",
    ]
    for envelope, mail in zip(envelopes, mails, strict=True):
        assert mail["Message-ID"] == message_id_for(envelope.event_id, "email", "oms.example")
        assert mail["To"] == "Jane Doe <jane.doe@example.com>"
        assert set(parts(mail)) == {"text/plain", "text/html"}
    assert "Carrier:            DHL" in parts(mails[5])["text/plain"]
    assert "Returned items:\r\n  2 x SKU-TSHIRT-RED-M" in parts(mails[9])["text/plain"]
    assert "Items not shipped:\r\n  1 x SKU-MUG-BLUE" in parts(mails[10])["text/plain"]

    texts = harness.provider.messages
    assert [m.reference for m in texts] == [
        "payment_failed",
        "order_shipped",
        "out_for_delivery",
        "delivered",
        "delivery_failed",
    ]
    assert "could not deliver" in texts[4].body
    assert {m.to for m in texts} == {PHONE}
    shipped_envelope = envelopes[5]
    assert texts[1].idempotency_key == str(notification_id_for(shipped_envelope.event_id, "sms"))
    assert "tracking JJD000390007713" in texts[1].body
    assert "https://tracking.example/track?id=JJD000390007713&lang=en" in texts[1].body

    rows = await harness.rows(placed.order_id)
    assert len(rows) == 17
    assert {r["status"] for r in rows} == {"sent"}
    sent = await harness.emitted(placed.order_id, "NotificationSent")
    assert len(sent) == 17
    by_id = {e.payload["notification_id"]: e for e in sent}
    shipped_sms = by_id[str(notification_id_for(shipped_envelope.event_id, "sms"))]
    assert shipped_sms.causation_id == shipped_envelope.event_id
    notification = REGISTRY.decode(shipped_sms)
    assert isinstance(notification, NotificationSent)
    assert (notification.channel, notification.recipient_masked) == ("sms", "+49*******67")


async def test_a_delivery_failure_reported_out_of_order_sends_nothing(
    harness: Harness, placed: OrderPlaced, delivery_failed: ShipmentDeliveryFailed
) -> None:
    await harness.send(placed)
    _, outcome = await harness.send(delivery_failed.model_copy(update={"superseded": True}))
    assert outcome is Outcome.PROCESSED
    await harness.dispatch()
    assert [m["X-OMS-Notification-Kind"] for m in harness.mails(placed.order_id)] == ["order_received"]
    await harness.send(delivery_failed)
    await harness.dispatch()
    assert [m["X-OMS-Notification-Kind"] for m in harness.mails(placed.order_id)] == [
        "order_received",
        "delivery_failed",
    ]


async def test_a_redelivered_event_or_the_same_fact_again_sends_nothing_more(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    await harness.send(placed)
    envelope, _ = await harness.send(shipped)
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 2
    assert len(harness.provider.messages) == 1

    # Kafka delivers the same record again: the inbox stops it.
    assert await harness.deliver(envelope) is Outcome.DUPLICATE
    # The same parcel reported again under a new event id: the dedupe key stops it.
    _, outcome = await harness.send(shipped)
    assert outcome is Outcome.PROCESSED
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 2
    assert len(harness.provider.messages) == 1
    assert len(await harness.rows(placed.order_id)) == 3
    # A second parcel of a split order is news: its own messages.
    second = shipped.model_copy(update={"shipment_id": shipped.shipment_id.__class__(int=shipped.shipment_id.int + 1)})
    await harness.send(second)
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 3
    assert len(harness.provider.messages) == 2


async def test_an_event_for_an_unknown_order_is_dead_lettered(harness: Harness, confirmed: OrderConfirmed) -> None:
    _, outcome = await harness.send(confirmed)
    assert outcome is Outcome.DEAD_LETTERED
    [(_, reason)] = harness.dead_letters.sent
    assert "OrderPlaced was not seen" in reason


# ---------------------------------------------------------------- a crash between sending and recording


async def test_sms_crash_after_sending_then_restart_and_redelivery_sends_once(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    await harness.send(placed)
    await harness.dispatch()
    envelope, _ = await harness.send(shipped)
    sms_id = notification_id_for(envelope.event_id, "sms")
    dying = harness.dispatcher(sms_sender=CrashAfterSending(harness.sms_sender))
    with pytest.raises(Crash):
        await dying.run_once()
    assert len(harness.provider.messages) == 1, "the provider took the message"
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["notification_id"], row["status"]) == (sms_id, "sending"), "the outcome was never recorded"

    # Restarted: Kafka redelivers the event (the inbox absorbs it) ...
    assert await harness.deliver(envelope) is Outcome.DUPLICATE
    # (meanwhile the customer switched to German: the message already handed over stays as it was)
    await harness.set_preferences(Preferences(placed.customer.customer_id, locale="de"))
    # ... and before the lease ends, nobody touches the row (the first process might still be at it).
    await harness.dispatch()
    assert (await harness.row(placed.order_id, "order_shipped", "sms"))["status"] == "sending"
    assert (await harness.row(placed.order_id, "order_shipped", "email"))["status"] == "sent"
    # Once it ended, the row is sent again with the same idempotency key: the provider answers with
    # the first message and sends nothing new.
    harness.clock.advance(seconds=61)
    requests_before = harness.provider.requests
    await harness.dispatch()
    assert harness.provider.requests == requests_before + 1
    [only] = harness.provider.messages
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["provider_message_id"], row["attempts"]) == ("sent", only.id, 2)
    sms_sent = [e for e in await harness.emitted(placed.order_id, "NotificationSent") if e.payload["channel"] == "sms"]
    assert len(sms_sent) == 1


async def test_email_crash_after_sending_is_not_sent_again(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    await harness.send(placed)
    await harness.dispatch()
    envelope, _ = await harness.send(confirmed)
    email_id = notification_id_for(envelope.event_id, "email")
    with pytest.raises(Crash):
        await harness.dispatcher(email_sender=CrashAfterSending(harness.email_sender)).run_once()
    assert len(harness.mails(placed.order_id)) == 2
    assert (await harness.row(placed.order_id, "order_confirmation", "email"))["notification_id"] == email_id

    assert await harness.deliver(envelope) is Outcome.DUPLICATE
    harness.clock.advance(seconds=61)
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 2, "SMTP has no idempotency key: never a second email"
    row = await harness.row(placed.order_id, "order_confirmation", "email")
    assert row["status"] == "unconfirmed"
    assert row["message_id"] == message_id_for(envelope.event_id, "email", "oms.example")
    kinds = [e.payload["kind"] for e in await harness.emitted(placed.order_id, "NotificationSent")]
    assert kinds == ["order_received"]


# ---------------------------------------------------------------- failures


async def test_a_declined_payment_is_told_once_not_again_as_a_rejection(
    harness: Harness, placed: OrderPlaced, payment_declined: OrderPaymentDeclined
) -> None:
    await harness.send(placed)
    await harness.send(payment_declined)
    rejected = OrderRejected(
        order_id=placed.order_id,
        reason_code="payment_declined",
        reason="Your payment was declined, so we could not complete your order.",
    )
    _, outcome = await harness.send(rejected)
    assert outcome is Outcome.PROCESSED
    await harness.dispatch()
    kinds = [m["X-OMS-Notification-Kind"] for m in harness.mails(placed.order_id)]
    assert kinds == ["order_received", "payment_failed"]
    assert [m.reference for m in harness.provider.messages] == ["payment_failed"]


async def test_a_message_that_cannot_be_prepared_does_not_block_the_others(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed, tmp_path: Path
) -> None:
    # A template set without the first message of every order: its rendering fails every time.
    (tmp_path / "en").mkdir()
    for source in (TEMPLATES_DIR / "en").iterdir():
        if not source.name.startswith("order_received."):
            (tmp_path / "en" / source.name).write_text(source.read_text())
    broken = harness.dispatcher(renderer=TemplateRenderer(tmp_path))
    await harness.send(placed)
    harness.clock.advance(seconds=1)
    await harness.send(confirmed)
    for _ in range(harness.max_attempts):
        await harness.dispatch(broken)
        harness.clock.advance(hours=1)
    assert [m["X-OMS-Notification-Kind"] for m in harness.mails(placed.order_id)] == ["order_confirmation"]
    row = await harness.row(placed.order_id, "order_received", "email")
    assert (row["status"], row["status_reason"], row["attempts"]) == ("failed", "error", harness.max_attempts)
    assert "TemplatesNotFound" in row["error"]
    [failed] = await harness.emitted(placed.order_id, "NotificationFailed")
    assert failed.payload["reason_code"] == "error"


async def test_transient_failures_are_retried_with_backoff(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    await harness.send(placed)
    await harness.dispatch()
    harness.provider.fail_next(503, "unavailable", times=2)
    await harness.send(shipped)
    dispatcher = harness.dispatcher()
    await harness.dispatch(dispatcher)
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["due_at"] == harness.clock() + timedelta(seconds=RETRY_BASE_S)
    assert "503" in row["error"]
    assert harness.provider.messages == []

    harness.clock.advance(seconds=RETRY_BASE_S - 1)
    await harness.dispatch(dispatcher)
    assert (await harness.row(placed.order_id, "order_shipped", "sms"))["attempts"] == 1, "not before its time"
    harness.clock.advance(seconds=1)
    await harness.dispatch(dispatcher)
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["attempts"]) == ("pending", 2)
    assert row["due_at"] == harness.clock() + timedelta(seconds=2 * RETRY_BASE_S), "the delay doubles"

    harness.clock.advance(seconds=2 * RETRY_BASE_S)
    await harness.dispatch(dispatcher)
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 3, None)
    assert len(harness.provider.messages) == 1
    assert (await harness.row(placed.order_id, "order_shipped", "email"))["attempts"] == 1


async def test_transient_failures_give_up_after_the_attempts(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    await harness.send(placed)
    await harness.dispatch()
    harness.provider.fail_next(503, "unavailable", times=100)
    await harness.send(shipped)
    for _ in range(harness.max_attempts):
        await harness.dispatch()
        harness.clock.advance(hours=1)
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["status_reason"], row["attempts"]) == ("failed", "gave_up", 4)
    requests = harness.provider.requests
    harness.clock.advance(days=1)
    await harness.dispatch()
    assert harness.provider.requests == requests, "never retried forever"
    [failed] = await harness.emitted(placed.order_id, "NotificationFailed")
    message = REGISTRY.decode(failed)
    assert isinstance(message, NotificationFailed)
    assert (message.reason_code, message.channel, message.attempts) == ("gave_up", "sms", 4)
    assert message.recipient_masked == "+49*******67"


async def test_an_operator_sends_a_failed_message_again(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    await harness.send(placed)
    harness.provider.fail_next(503, "unavailable", times=harness.max_attempts)
    envelope, _ = await harness.send(shipped)
    for _ in range(harness.max_attempts):
        await harness.dispatch()
        harness.clock.advance(hours=1)
    sms_id = notification_id_for(envelope.event_id, "sms")
    assert (await harness.row(placed.order_id, "order_shipped", "sms"))["status"] == "failed"
    keys = json.dumps([{"name": "support-desk", "key": "ops-key-0123456789abcdef", "role": "ops"}])
    dispatcher = harness.dispatcher()
    app = create_app(
        harness.db, harness.repository, ApiKeyAuthenticator.from_json(keys), harness.clock, resend=dispatcher.resend
    )
    headers = {"X-API-Key": "ops-key-0123456789abcdef"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n", headers=headers) as api:
        response = await api.post(f"/notifications/{sms_id}/resend")
        assert response.status_code == 202, response.text
        assert (response.json()["status"], response.json()["resends"]) == ("pending", 1)
        await harness.dispatch(dispatcher)
        [sms] = harness.provider.messages
        assert sms.idempotency_key == f"{sms_id}:1", "a new message to the provider: a new key"
        row = await harness.row(placed.order_id, "order_shipped", "sms")
        assert (row["status"], row["attempts"], row["resends"]) == ("sent", 1, 1)
        refused = await api.post(f"/notifications/{sms_id}/resend")
        assert (refused.status_code, refused.json()["error"]) == (409, "resend_not_allowed")
        missing = await api.post(f"/notifications/{notification_id_for(placed.order_id, 'sms')}/resend")
        assert (missing.status_code, missing.json()["error"]) == (404, "notification_not_found")
        assert (await api.post(f"/notifications/{sms_id}/resend", headers={"X-API-Key": ""})).status_code == 401
    assert len(await harness.emitted(placed.order_id, "NotificationFailed")) == 1
    assert (
        len([e for e in await harness.emitted(placed.order_id, "NotificationSent") if e.payload["channel"] == "sms"])
        == 1
    )


async def test_permanent_failures_are_recorded_published_and_not_retried(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    harness.provider.unsubscribe(PHONE)
    harness.smtp.refuse[CUSTOMER] = "550 5.1.1 <jane.doe@example.com>: no such user"
    await harness.send(placed)
    await harness.send(shipped)
    await harness.dispatch()
    harness.clock.advance(days=1)
    await harness.dispatch()
    assert harness.smtp.received == []
    assert harness.provider.messages == []
    assert harness.provider.requests == 1
    failed = [REGISTRY.decode(e) for e in await harness.emitted(placed.order_id, "NotificationFailed")]
    assert all(isinstance(m, NotificationFailed) for m in failed)
    got = sorted(
        (e.payload["kind"], e.payload["channel"], e.payload["reason_code"], e.payload["recipient_masked"])
        for e in await harness.emitted(placed.order_id, "NotificationFailed")
    )
    assert got == [
        ("order_received", "email", "bad_address", "j***@example.com"),
        ("order_shipped", "email", "bad_address", "j***@example.com"),
        ("order_shipped", "sms", "unsubscribed", "+49*******67"),
    ]
    for message in failed:
        assert "jane.doe" not in message.model_dump_json()
        assert "1234567" not in message.model_dump_json()
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["status_reason"], row["attempts"]) == ("failed", "unsubscribed", 1)


async def test_a_phone_number_without_country_code_is_a_bad_address(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    local = placed.model_copy(update={"customer": placed.customer.model_copy(update={"phone": "030 1234567"})})
    await harness.send(local)
    await harness.send(shipped)
    await harness.dispatch()
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["status_reason"]) == ("failed", "bad_address")
    assert harness.provider.requests == 0
    assert len(await harness.emitted(placed.order_id, "NotificationFailed")) == 1


# ---------------------------------------------------------------- preferences


async def test_quiet_hours_defer_sms_to_their_end_across_a_restart(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    berlin_night = datetime(2025, 1, 10, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    harness.clock.now = berlin_night
    await harness.set_preferences(
        Preferences(placed.customer.customer_id, time_zone="Europe/Berlin", quiet_hours=QuietHours(time(22), time(7)))
    )
    await harness.send(placed)
    await harness.send(shipped)
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 2, "email is not held by quiet hours"
    assert harness.provider.messages == []
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["status_reason"]) == ("deferred", "quiet_hours")
    seven_in_berlin = datetime(2025, 1, 11, 6, 0, tzinfo=UTC)
    assert row["due_at"] == seven_in_berlin

    # The service restarts overnight: the schedule is in the database, not in a sleeping task.
    harness.clock.now = seven_in_berlin - timedelta(seconds=1)
    await harness.dispatch(harness.dispatcher())
    assert harness.provider.messages == []
    harness.clock.now = seven_in_berlin
    await harness.dispatch(harness.dispatcher())
    [sms] = harness.provider.messages
    assert "has shipped" in sms.body
    assert (await harness.row(placed.order_id, "order_shipped", "sms"))["status"] == "sent"


async def test_opt_in_opt_out_and_locale_are_respected(
    harness: Harness,
    placed: OrderPlaced,
    confirmed: OrderConfirmed,
    out_for_delivery: ShipmentOutForDelivery,
    delivered: ShipmentDelivered,
) -> None:
    choices = {
        (NotificationKind.ORDER_RECEIVED, "email"): False,
        (NotificationKind.ORDER_CONFIRMATION, "sms"): True,
        (NotificationKind.OUT_FOR_DELIVERY, "email"): False,
    }
    customer = placed.customer.customer_id
    await harness.set_preferences(Preferences(customer, locale="de", choices=choices))
    for event in (placed, confirmed, out_for_delivery):
        await harness.send(event)
    # Opted out of delivered-by-SMS after the event was planned, before it went out: not sent.
    await harness.send(delivered)
    choices[(NotificationKind.DELIVERED, "sms")] = False
    await harness.set_preferences(Preferences(customer, locale="de", choices=choices))
    await harness.dispatch()
    ref = short_order_id(placed.order_id)
    assert [m["Subject"] for m in harness.mails(placed.order_id)] == [
        f"Ihre Bestellung {ref} ist bestätigt",
        f"Ihre Bestellung {ref} wurde zugestellt",
    ]
    assert [m.reference for m in harness.provider.messages] == ["order_confirmation", "out_for_delivery"]
    assert harness.provider.messages[0].body.startswith(f"Ihre Bestellung {ref} ist bestätigt")
    statuses = {
        (r["kind"], r["channel"]): (r["status"], r["status_reason"]) for r in await harness.rows(placed.order_id)
    }
    assert statuses == {
        ("order_received", "email"): ("suppressed", "opted_out"),
        ("order_confirmation", "email"): ("sent", None),
        ("order_confirmation", "sms"): ("sent", None),
        ("out_for_delivery", "email"): ("suppressed", "opted_out"),
        ("out_for_delivery", "sms"): ("sent", None),
        ("delivered", "email"): ("sent", None),
        ("delivered", "sms"): ("suppressed", "opted_out"),
    }
    assert (await harness.row(placed.order_id, "delivered", "email"))["locale"] == "de"


# ---------------------------------------------------------------- the provider's delivery reports


WEBHOOK_TOKEN = "sms-webhook-token-0123456789"


async def test_sms_delivery_reports_settle_the_delivery_state(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped, out_for_delivery: ShipmentOutForDelivery
) -> None:
    harness.sms_sender = HttpSmsSender(
        SmsProviderConfig(base_url=harness.provider.url, status_callback_url="http://notification/webhooks/sms/status")
    )
    dispatcher = harness.dispatcher()
    app = create_app(
        harness.db,
        harness.repository,
        ApiKeyAuthenticator([]),
        harness.clock,
        sms_reports=dispatcher.record_sms_report,
        webhook_token=WEBHOOK_TOKEN,
    )
    await harness.send(placed)
    await harness.send(shipped)
    await harness.send(out_for_delivery)
    await harness.dispatch(dispatcher)
    shipped_sms, out_sms = harness.provider.messages
    assert shipped_sms.status_callback == "http://notification/webhooks/sms/status"
    token = {"X-Webhook-Token": WEBHOOK_TOKEN}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notification") as provider:
        path = "/webhooks/sms/status"
        assert (await provider.post(path, json=delivery_report(shipped_sms, "delivered"))).status_code == 401
        wrong = await provider.post(
            path, json=delivery_report(shipped_sms, "delivered"), headers={"X-Webhook-Token": "x"}
        )
        assert wrong.json()["error"] == "unauthenticated"
        harness.clock.advance(minutes=3)
        response = await provider.post(path, json=delivery_report(shipped_sms, "delivered"), headers=token)
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["kind"]) == ("delivered", "order_shipped")
        # A report repeated (providers retry) or contradicting a settled one changes nothing.
        again = await provider.post(path, json=delivery_report(shipped_sms, "undelivered", "30008"), headers=token)
        assert again.json()["status"] == "delivered"
        failed = await provider.post(path, json=delivery_report(out_sms, "undelivered", "30003"), headers=token)
        assert failed.json()["status"] == "undelivered"
        unknown = await provider.post(path, json={"id": "SM999999", "status": "delivered"}, headers=token)
        assert (unknown.status_code, unknown.json()["error"]) == (404, "notification_not_found")
        bad = await provider.post(path, json={"id": "SM000001", "status": "lost"}, headers=token)
        assert bad.status_code == 422
        assert bad.json()["fields"][0]["field"] == "status"
    row = await harness.row(placed.order_id, "order_shipped", "sms")
    assert (row["status"], row["delivered_at"]) == ("delivered", harness.clock())
    row = await harness.row(placed.order_id, "out_for_delivery", "sms")
    assert (row["status"], row["status_reason"], row["delivered_at"]) == ("undelivered", "undelivered", None)
    [failed_event] = await harness.emitted(placed.order_id, "NotificationFailed")
    assert failed_event.payload["reason_code"] == "undelivered"
    assert "30003" in failed_event.payload["reason"]
    assert failed_event.payload["kind"] == "out_for_delivery"

    closed = create_app(harness.db, harness.repository, ApiKeyAuthenticator([]), harness.clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=closed), base_url="http://n") as provider:
        response = await provider.post(path, json=delivery_report(shipped_sms, "delivered"), headers=token)
        assert (response.status_code, response.json()["error"]) == (403, "forbidden")


# ---------------------------------------------------------------- privacy


async def test_a_batch_s_log_lines_carry_each_message_s_order_and_type(
    harness: Harness, placed: OrderPlaced, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch's rows and their log lines are written at its commit, after the messages' log contexts ended.
    other = placed.model_copy(update={"order_id": uuid4(), "external_reference": "WEB-200001"})
    configure_logging(SERVICE, "INFO", "json")
    try:
        monkeypatch.setattr(notification_service.handlers, "log", get_logger("notification_service.handlers"))
        await harness.deliver_batch([REGISTRY.wrap(e, producer="order-service") for e in (placed, other)])
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    stored = [line for line in lines if line["message"] == "order contact stored"]
    assert [(line["order_id"], line["correlation_id"], line["message_type"]) for line in stored] == [
        (str(placed.order_id), str(placed.order_id), "OrderPlaced"),
        (str(other.order_id), str(other.order_id), "OrderPlaced"),
    ]


async def test_log_lines_mask_email_addresses_and_phone_numbers(
    harness: Harness,
    placed: OrderPlaced,
    shipped: OrderShipped,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging(SERVICE, "INFO", "json")
    try:
        # Fresh loggers, bound to the configuration just made (the modules' own may be cached).
        monkeypatch.setattr(notification_service.handlers, "log", get_logger("notification_service.handlers"))
        monkeypatch.setattr(notification_service.dispatcher, "log", get_logger("notification_service.dispatcher"))
        monkeypatch.setattr(notification_service.claims, "log", get_logger("notification_service.claims"))
        monkeypatch.setattr(oms_runtime.messaging, "log", get_logger("oms_runtime.messaging"))
        harness.provider.unsubscribe(PHONE)
        harness.smtp.refuse[CUSTOMER] = "550 5.1.1 <jane.doe@example.com>: no such user"
        await harness.send(placed)
        await harness.send(shipped)
        await harness.dispatch()
        get_logger("test").info("raw personal data", note=f"customer {CUSTOMER} at +49 30 1234567")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert "notification queued" in messages
    assert "notification refused for good; not retrying" in messages
    refused = [line for line in lines if line["message"] == "notification refused for good; not retrying"]
    assert {line["recipient"] for line in refused} == {"j***@example.com", "+49*******67"}
    [raw] = [line for line in lines if line["message"] == "raw personal data"]
    assert raw["note"] == "customer j***@example.com at ***67"
    logged = json.dumps(lines)
    for secret in (CUSTOMER, "jane.doe", "1234567", "301234567"):
        assert secret not in logged


# ---------------------------------------------------------------- wiring


async def test_build_wires_the_consumer_the_dispatcher_and_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_PROVIDER_URL", "https://sms.internal.example")
    monkeypatch.setenv("SMS_API_KEY", "sms-s3cret")
    monkeypatch.setenv("SMTP_FROM", "shop@brand.example")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    settings = NotificationSettings()
    assert settings.http_port == 8004
    config = settings.sms_config()
    assert (config.base_url, config.api_key, config.sender_id) == ("https://sms.internal.example", "sms-s3cret", "OMS")
    assert settings.message_id_domain == "brand.example"
    assert "s3cret" not in repr(settings)
    host = build(settings)
    try:
        # Email and SMS, and the webhook deliveries in a group of their own.
        assert list(host.processors) == [SERVICE, WEBHOOKS_GROUP]
        assert host.db.schema == "notification_service"
    finally:
        await host.db.dispose()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMTP_HOST", "SMTP_PORT", "SMS_PROVIDER_URL", "HTTP_PORT", "NOTIFY_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    settings = NotificationSettings()
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 1025)
    assert settings.sms_provider_url == "http://127.0.0.1:1026"
    assert (settings.http_port, settings.notify_max_attempts) == (8004, 6)
