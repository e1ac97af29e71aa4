"""The envelope -> CloudEvents mapping, read back by the CloudEvents SDK (a client this project does not use
at run time), so a receiver with off-the-shelf tooling reads what the OMS writes."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

from oms_events import default_registry
from oms_events.cloudevents import (
    STRUCTURED_CONTENT_TYPE,
    attributes,
    ce_type,
    message_type_of,
    structured_json,
)
from oms_events.envelope import TraceContext
from oms_events.messages import OrderConfirmed, PurchaseOrderRaised


def test_an_order_event_reads_back_with_the_sdk() -> None:
    order_id = uuid4()
    message = OrderConfirmed(order_id=order_id, payment_id=uuid4(), amount_minor=1250, currency="EUR")
    envelope = (
        default_registry()
        .wrap(
            message,
            producer="order-service",
            trace_context=TraceContext(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
        .model_copy(update={"occurred_at": datetime(2026, 12, 4, 3, 30, 0, 123000, tzinfo=UTC)})
    )
    event = from_structured_event(
        HTTPMessage(headers={"content-type": STRUCTURED_CONTENT_TYPE}, body=structured_json(envelope))
    )
    assert event.get_id() == str(envelope.event_id)
    assert event.get_source() == "/oms/order-service"
    assert event.get_type() == "example.oms.OrderConfirmed.v1"
    assert event.get_subject() == str(order_id)
    assert event.get_time() == datetime(2026, 12, 4, 3, 30, 0, 123000, tzinfo=UTC)
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == envelope.payload
    assert event.get_extension("traceparent") == envelope.trace_context.traceparent
    assert event.get_extension("correlationid") == str(order_id)


def test_a_stock_event_is_about_its_sku() -> None:
    message = PurchaseOrderRaised(
        sku="SKU-1",
        purchase_order_id=uuid4(),
        warehouse_id="berlin",
        quantity=40,
        available=3,
        reorder_point=5,
        lead_time_days=4,
        expected_by=datetime(2026, 12, 8, tzinfo=UTC).date(),
    )
    found = attributes(default_registry().wrap(message, producer="inventory-service"))
    assert found["subject"] == "SKU-1"
    assert found["source"] == "/oms/inventory-service"
    assert "causationid" not in found


def test_types_name_the_message_and_its_version() -> None:
    assert message_type_of(ce_type("OrderCancelled", 2)) == ("OrderCancelled", 2)
    for wrong in ("OrderCancelled", "example.oms.OrderCancelled", "other.OrderCancelled.v1", "example.oms.X.v0"):
        with pytest.raises(ValueError, match="not an OMS CloudEvents type"):
            message_type_of(wrong)
