"""Consumers take records in batches, one transaction per batch: a burst of redelivered records, every
one byte for byte, must have no second effect anywhere, and must not stop the records behind it."""

import asyncio
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaProducer

from harness import System, unique_sku
from oms_events import topics

PRICE = 990
REPLAYED = (
    topics.INVENTORY_COMMANDS,
    topics.PAYMENTS_COMMANDS,
    topics.FULFILMENT_COMMANDS,
    topics.INVENTORY_EVENTS,
    topics.PAYMENTS_EVENTS,
    topics.FULFILMENT_EVENTS,
    topics.ORDERS_EVENTS,
)
WATCHED = (*REPLAYED, topics.NOTIFICATIONS_EVENTS)


async def per_topic(system: System, order_ids: set[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for topic in WATCHED:
        found[topic] = [r for r in await system.records(topic) if (r.key or b"").decode() in order_ids]
    return found


async def test_a_burst_of_every_record_of_finished_orders_redelivered_changes_nothing(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 40})
    async with system.http() as http:
        order_ids = [
            str((await system.place_order([(sku, 2, PRICE)], client=http)).json()["order_id"]) for _ in range(12)
        ]
    finals = await asyncio.gather(*(system.wait_for_status(o, {"shipped"}, timeout_s=120) for o in order_ids))
    timelines = {o["order_id"]: [t["event"] for t in o["timeline"]] for o in finals}
    await system.wait_for_stock(sku, {"WH-BER": (16, 0)})
    await asyncio.sleep(2.0)  # the last notifications of the last order
    before = await per_topic(system, set(order_ids))
    assert all(before[topic] for topic in WATCHED), {t: len(r) for t, r in before.items()}

    # Every record of these orders, again, byte for byte with its key and headers, in one burst: the
    # consumers poll them in batches of many records.
    producer = AIOKafkaProducer(**system.infra.kafka.client_args(), enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value=r.value, key=r.key, headers=list(r.headers or ()))
            for topic in REPLAYED
            for r in before[topic]
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    # Records behind the burst are still processed: a new order goes all the way.
    after_order = (await system.place_order([(sku, 1, PRICE)])).json()["order_id"]
    await system.wait_for_status(after_order, {"shipped"}, timeout_s=120)
    await system.wait_for_stock(sku, {"WH-BER": (15, 0)})
    await asyncio.sleep(2.0)  # every chance for a doubled effect to show

    after = await per_topic(system, set(order_ids))
    # Nothing answered the copies: each replayed topic holds the originals and their copies only,
    # and nobody sent a notification again.
    for topic in REPLAYED:
        assert len(after[topic]) == 2 * len(before[topic]), topic
        assert Counter(r.value for r in after[topic]) == Counter({r.value: 2 for r in before[topic]}), topic
    assert len(after[topics.NOTIFICATIONS_EVENTS]) == len(before[topics.NOTIFICATIONS_EVENTS])
    for order_id in order_ids:
        order = await system.order(order_id)
        assert [t["event"] for t in order["timeline"]] == timelines[order_id]
        assert order["status"] == "shipped"
    # One capture per order, of the order's value (the payment's own history, not the topics).
    async with system.http(service="payment-service") as payments:
        for order_id in order_ids:
            payment = (await payments.get(f"/payments/{order_id}")).json()
            assert payment["captured_minor"] == 2 * PRICE, payment
            assert [h["type"] for h in payment["history"]].count("PaymentCaptured") == 1, payment
