"""Every record the OMS produces reads as a CloudEvent (Kafka protocol binding, binary mode) with tools
the project does not use itself: librdkafka's client (confluent-kafka) and the CloudEvents SDK."""

import asyncio
import time
from typing import Any

from cloudevents.v1.kafka import KafkaMessage, from_binary
from confluent_kafka import Consumer, TopicPartition

from harness import System, unique_sku
from oms_events import cloudevents, topics

# Every topic the services write (the intake topic is written by upstream systems, not by the OMS).
PRODUCED_TOPICS = (
    topics.ORDERS_EVENTS,
    topics.INVENTORY_COMMANDS,
    topics.INVENTORY_EVENTS,
    topics.PAYMENTS_COMMANDS,
    topics.PAYMENTS_EVENTS,
    topics.FULFILMENT_COMMANDS,
    topics.FULFILMENT_EVENTS,
    topics.NOTIFICATIONS_EVENTS,
)


def read_since(kafka: dict[str, str], since_ms: int) -> list[Any]:
    """Every record written to the produced topics since `since_ms`, read with confluent-kafka."""
    consumer = Consumer({**kafka, "group.id": "cloudevents-check", "enable.auto.commit": False})
    try:
        partitions = [
            TopicPartition(topic, p, since_ms)
            for topic in PRODUCED_TOPICS
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        starts = consumer.offsets_for_times(partitions, timeout=10)
        ends = {}
        for tp in starts:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            if tp.offset >= 0 and tp.offset < high:
                ends[(tp.topic, tp.partition)] = high
        consumer.assign([tp for tp in starts if (tp.topic, tp.partition) in ends])
        records = []
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            record = consumer.poll(1.0)
            if record is None or record.error():
                continue
            records.append(record)
            place = (record.topic(), record.partition())
            offset = record.offset()
            if place in ends and offset is not None and offset + 1 >= ends[place]:
                del ends[place]
        assert not ends, f"not read to the end: {ends}"
        return records
    finally:
        consumer.close()


async def test_every_record_of_an_order_is_a_valid_cloudevent_in_binary_mode(system: System) -> None:
    since_ms = int(time.time() * 1000) - 1000
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    response = await system.place_order([(sku, 1, 1_500)])
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]
    order = await system.wait_for_status(order_id, {"shipped"})
    assert order["status"] == "shipped"
    await asyncio.sleep(1)  # the notifications sent after the shipment

    records = await asyncio.to_thread(read_since, system.infra.librdkafka_config(), since_ms)
    ours = [r for r in records if r.key() == order_id.encode()]
    seen_types = set()
    for record in ours:
        headers = {name: value for name, value in record.headers() or ()}
        event = from_binary(KafkaMessage(headers=headers, key=record.key(), value=record.value()))
        envelope = event.get_data()  # binary mode: the value, the envelope's JSON, is the data
        assert isinstance(envelope, dict)
        assert event["specversion"] == "1.0"
        assert event["id"] == envelope["event_id"]
        assert event["source"] == f"/oms/{envelope['producer']}"
        assert cloudevents.message_type_of(event["type"]) == (envelope["type"], envelope["schema_version"])
        assert event["subject"] == order_id
        assert event["time"].replace("Z", "+00:00")[:19] == envelope["occurred_at"][:19]
        assert event["datacontenttype"] == "application/json"
        assert event["correlationid"] == envelope["correlation_id"]
        seen_types.add(envelope["type"])
    # The order's whole life, from every producing service.
    assert {"OrderPlaced", "ReserveStock", "StockReserved", "PaymentAuthorised", "ShipOrder", "Shipped"} <= seen_types
    assert "OrderShipped" in seen_types
    # Every record of the run on those topics carries the binding's headers, not only this order's.
    unmarked = [(r.topic(), r.offset()) for r in records if not any(k == "ce_id" for k, _ in r.headers() or ())]
    assert unmarked == []
