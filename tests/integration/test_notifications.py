"""Customer notifications on the real system: an order flows through all five services and the customer
gets email (the test's SMTP server) and SMS (the local SMS provider, over HTTP), in their language, once,
even when notification-service is killed on the way; support reads it all back through the API."""

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx

from harness import OPS_KEY, System, eventually, order_body, restarted, unique_sku
from notification_service.testing import LocalSmsProvider, delivery_report
from oms_events import default_registry, topics
from oms_events.messages import ShipmentDelivered, ShipmentOutForDelivery

PRICE = 2_450
PHONE = "+49301234567"
NOTIFICATIONS = "notification-service"


async def place(system: System, sku: str, customer_id: str) -> str:
    body = order_body([(sku, 1, PRICE)])
    body["customer"]["customer_id"] = customer_id
    async with system.http() as http:
        response = await http.post("/orders", json=body)
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    return order_id


def subjects(system: System, order_id: str) -> list[str]:
    return [str(m["Subject"]) for m in system.mailbox if m["X-OMS-Order-Id"] == order_id]


def texts(sms_provider: LocalSmsProvider, order_id: str) -> list[str]:
    return [m.body for m in sms_provider.messages if order_id[:8].upper() in m.body]


async def history(system: System, order_id: str) -> list[dict[str, Any]]:
    async with system.http(OPS_KEY, service=NOTIFICATIONS) as http:
        response = await http.get(f"/orders/{order_id}/notifications")
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["notifications"]
    return found


async def test_an_order_flows_and_the_customer_gets_email_and_sms(
    system: System, sms_provider: LocalSmsProvider, sms_webhook_token: str
) -> None:
    customer = f"cust-{uuid4().hex[:10]}"
    async with system.http(OPS_KEY, service=NOTIFICATIONS) as http:
        response = await http.put(
            f"/customers/{customer}/preferences",
            json={"locale": "de", "time_zone": "Europe/Berlin", "channels": {"order_confirmation": {"sms": True}}},
        )
        assert response.status_code == 200, response.text
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    order_id = await place(system, sku, customer)
    order = await system.wait_for_status(order_id, {"shipped", "rejected"})
    assert order["status"] == "shipped"
    ref = order_id[:8].upper()

    mails = await eventually(lambda: asyncio.sleep(0, subjects(system, order_id)), lambda s: len(s) >= 3)
    assert mails == [
        f"Wir haben Ihre Bestellung {ref} erhalten",
        f"Ihre Bestellung {ref} ist bestätigt",
        f"Ihre Bestellung {ref} wurde versandt",
    ]
    sms = await eventually(lambda: asyncio.sleep(0, texts(sms_provider, order_id)), lambda s: len(s) >= 2)
    assert len(sms) == 2
    assert sms[0].startswith(f"Ihre Bestellung {ref} ist bestätigt: EUR 24.50 abgebucht.")
    [shipment] = order["shipments"]
    assert sms[1].startswith(f"Ihre Bestellung {ref} wurde mit {shipment['carrier']} versandt")
    assert shipment["tracking_number"] in sms[1]
    assert {m.to for m in sms_provider.messages if ref in m.body} == {PHONE}

    # The carrier's updates (fulfilment will emit them; published here as it will): email and SMS each.
    registry = default_registry()
    shipment_id = UUID(shipment["shipment_id"])
    for update in (ShipmentOutForDelivery, ShipmentDelivered):
        event = update(
            order_id=UUID(order_id),
            shipment_id=shipment_id,
            carrier=shipment["carrier"],
            tracking_number=shipment["tracking_number"],
            location="Berlin",
            reported_at=datetime.now(UTC),
        )
        envelope = registry.wrap(event, producer="carrier-gateway")
        await system.publish(topics.FULFILMENT_EVENTS, envelope.to_bytes(), key=order_id)
    mails = await eventually(lambda: asyncio.sleep(0, subjects(system, order_id)), lambda s: len(s) >= 5)
    assert mails[3:] == [f"Ihre Bestellung {ref} kommt heute", f"Ihre Bestellung {ref} wurde zugestellt"]
    sms = await eventually(lambda: asyncio.sleep(0, texts(sms_provider, order_id)), lambda s: len(s) >= 4)
    assert sms[2].startswith(f"Ihr Paket {shipment_id.hex[:8].upper()} der Bestellung {ref} wird heute")
    assert "wurde von" in sms[3]

    # The provider reports the text messages delivered (as it would to SMS_STATUS_CALLBACK_URL).
    await eventually(lambda: history(system, order_id), lambda h: len(h) == 9 and all(n["status"] == "sent" for n in h))
    mine_sms = [m for m in sms_provider.messages if ref in m.body]
    async with httpx.AsyncClient(base_url=system.http_urls[NOTIFICATIONS]) as provider:
        for message in mine_sms:
            report = await provider.post(
                "/webhooks/sms/status",
                json=delivery_report(message, "delivered"),
                headers={"X-Webhook-Token": sms_webhook_token},
            )
            assert report.status_code == 200, report.text

    # Support's view: what was sent, when, by which channel, its state; and the events for others.
    rows = await history(system, order_id)
    assert {(n["channel"], n["status"]) for n in rows} == {("email", "sent"), ("sms", "delivered")}
    assert all(n["delivered_at"] for n in rows if n["channel"] == "sms")
    assert sorted((n["kind"], n["channel"]) for n in rows) == sorted(
        [
            ("order_received", "email"),
            ("order_confirmation", "email"),
            ("order_confirmation", "sms"),
            ("order_shipped", "email"),
            ("order_shipped", "sms"),
            ("out_for_delivery", "email"),
            ("out_for_delivery", "sms"),
            ("delivered", "email"),
            ("delivered", "sms"),
        ]
    )
    assert {n["recipient_masked"] for n in rows} == {"j***@example.com", "+49*******67"}
    assert all(n["sent_at"] and n["locale"] == "de" for n in rows)
    async with system.http(OPS_KEY, service=NOTIFICATIONS) as http:
        mine = (await http.get(f"/customers/{customer}/notifications")).json()["notifications"]
    assert {n["notification_id"] for n in mine} == {n["notification_id"] for n in rows}
    sent = await eventually(
        lambda: system.envelopes(topics.NOTIFICATIONS_EVENTS, order_id), lambda e: len(e) >= 9, timeout_s=30
    )
    assert len(sent) == 9
    assert {e["type"] for e in sent} == {"NotificationSent"}
    assert {e["payload"]["notification_id"] for e in sent} == {n["notification_id"] for n in rows}


async def test_notification_service_killed_on_the_way_sends_everything_once(
    system: System, sms_provider: LocalSmsProvider
) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    service = system.services[NOTIFICATIONS]
    with restarted(service):
        service.kill()
        order_id = await place(system, sku, f"cust-{uuid4().hex[:10]}")
        await system.wait_for_status(order_id, {"shipped"})
        assert subjects(system, order_id) == []
        service.start()
        await service.wait_started()
    ref = order_id[:8].upper()
    await eventually(lambda: asyncio.sleep(0, subjects(system, order_id)), lambda s: len(s) >= 3)
    await eventually(lambda: asyncio.sleep(0, texts(sms_provider, order_id)), lambda s: len(s) >= 1)
    rows = await eventually(
        lambda: history(system, order_id), lambda h: len(h) == 4 and all(n["status"] == "sent" for n in h)
    )
    await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
    assert subjects(system, order_id) == [
        f"We received your order {ref}",
        f"Your order {ref} is confirmed",
        f"Your order {ref} has shipped",
    ]
    assert len(texts(sms_provider, order_id)) == 1
    assert len(rows) == 4
