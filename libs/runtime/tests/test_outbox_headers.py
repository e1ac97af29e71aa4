"""The headers every outgoing record gets: the OMS's own and the CloudEvents Kafka binding's (binary mode)."""

from uuid import uuid4

from cloudevents.v1.kafka import KafkaMessage, from_binary

from oms_events import default_registry
from oms_events.messages import StockLevelChanged, StockReleased
from oms_runtime.outbox import kafka_headers

registry = default_registry()


def test_a_record_reads_as_a_cloudevent_with_the_envelope_as_its_data() -> None:
    cause = registry.wrap(StockReleased(order_id=uuid4(), reservation_id=None), producer="inventory-service")
    envelope = registry.wrap(
        StockReleased(order_id=uuid4(), reservation_id=uuid4()), producer="inventory-service", causation=cause
    )
    value = envelope.to_bytes()
    headers = {k: v.encode() for k, v in kafka_headers(envelope).items()}

    event = from_binary(KafkaMessage(headers=headers, key=b"k", value=value))

    assert event["id"] == str(envelope.event_id)
    assert event["source"] == "/oms/inventory-service"
    assert event["type"] == "example.oms.StockReleased.v1"
    assert event["subject"] == str(envelope.payload["order_id"])
    assert event["causationid"] == str(cause.event_id)
    assert event["datacontenttype"] == "application/json"
    assert event.get_data() == envelope.model_dump(mode="json")
    # The OMS's own headers stay for the tools and teams that read them.
    assert headers["type"] == b"StockReleased"
    assert headers["event_id"] == str(envelope.event_id).encode()


def test_the_subject_of_a_stock_event_is_its_sku() -> None:
    changed = StockLevelChanged(
        sku="SKU-9",
        warehouse_id="WH-BER",
        on_hand=5,
        reserved=0,
        available=5,
        safety_stock=0,
        on_hand_change=5,
        reserved_change=0,
        cause="restock",
        sequence=1,
    )
    envelope = registry.wrap(changed, producer="inventory-service")
    assert kafka_headers(envelope)["ce_subject"] == "SKU-9"
