"""The contract: envelopes, typed messages, upcasting, and checked-in schemas that match the models."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from pydantic import Field

from oms_events import ContractViolationError, Envelope, MessageRegistry, UnknownMessageTypeError, default_registry
from oms_events.messages import (
    MESSAGE_TYPES,
    Command,
    Event,
    OrderCancelled,
    ReserveStock,
    StockEvent,
    StockLevelChanged,
    StockReserved,
)
from oms_events.schema import differences, generate, write
from oms_events.topics import ALL_TOPICS, ORDERS_INTAKE, dead_letter_topic
from oms_events.values import Allocation, StockLine


def test_checked_in_schemas_match_the_models() -> None:
    assert differences() == [], "run `make schemas` and commit the result"


def test_schema_check_notices_a_changed_model(tmp_path: Path) -> None:
    write(tmp_path)
    assert differences(tmp_path) == []
    (tmp_path / "ReserveStock.v1.json").write_text("{}\n")
    (tmp_path / "Gone.v1.json").write_text("{}\n")
    assert differences(tmp_path) == ["stale Gone.v1.json (no such message)", "differs ReserveStock.v1.json"]


def test_every_message_has_a_schema_a_topic_and_a_tense_that_fits() -> None:
    names = set(generate())
    topic_names = {t.name for t in ALL_TOPICS}
    for cls in MESSAGE_TYPES:
        assert f"{cls.message_type}.v{cls.schema_version}.json" in names
        assert cls.topic in topic_names
        if cls.message_kind == "event":
            assert issubclass(cls, (Event, StockEvent)), cls
            assert cls.topic.endswith(".events"), cls
        else:
            assert issubclass(cls, Command)
            assert cls.topic.endswith(".commands") or cls.topic == ORDERS_INTAKE, cls


def test_round_trip_through_the_envelope_keeps_causation_and_correlation() -> None:
    registry = default_registry()
    order_id = uuid4()
    command = ReserveStock(order_id=order_id, lines=[StockLine(sku="SKU-1", quantity=2)])
    cause = registry.wrap(command, producer="order-service")
    assert cause.correlation_id == str(order_id)
    assert cause.causation_id is None

    envelope, message = registry.parse(cause.to_bytes())
    assert envelope == cause
    assert message == command
    assert message.key == str(order_id)

    reply = StockReserved(
        order_id=order_id,
        reservation_id=uuid4(),
        allocations=[Allocation(sku="SKU-1", warehouse_id="WH-1", quantity=2)],
    )
    effect = registry.wrap(reply, producer="inventory-service", causation=envelope)
    assert effect.causation_id == cause.event_id
    assert effect.correlation_id == cause.correlation_id
    assert effect.trace_context == cause.trace_context


def test_bad_input_names_the_field() -> None:
    registry = default_registry()
    with pytest.raises(ContractViolationError, match="invalid envelope"):
        registry.parse(b"{not json")
    raw = Envelope(
        type="ReserveStock",
        schema_version=1,
        producer="t",
        correlation_id="x",
        payload={"order_id": "nope", "lines": []},
    )
    with pytest.raises(ContractViolationError) as info:
        registry.decode(raw)
    assert "order_id" in info.value.reason
    assert "lines" in info.value.reason
    with pytest.raises(UnknownMessageTypeError):
        registry.decode(raw.model_copy(update={"type": "NoSuchThing"}))
    with pytest.raises(ContractViolationError, match="newer"):
        registry.decode(raw.model_copy(update={"schema_version": 9}))


def test_an_old_version_is_upcast_to_the_current_model() -> None:
    class ParcelWeighed(Event):
        """Version 2 renamed `grams` to `weight_grams` (a breaking change: hence a new version)."""

        topic: ClassVar[str] = "oms.fulfilment.events"
        schema_version: ClassVar[int] = 2
        weight_grams: int = Field(ge=0)

    def v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        payload = dict(payload)
        payload["weight_grams"] = payload.pop("grams")
        return payload

    registry = MessageRegistry([ParcelWeighed], {("ParcelWeighed", 1): v1_to_v2})
    order_id = uuid4()
    stored_v1 = Envelope(
        type="ParcelWeighed",
        schema_version=1,
        producer="fulfilment-service",
        correlation_id=str(order_id),
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={"order_id": str(order_id), "grams": 1200},
    )
    message = registry.decode(stored_v1)
    assert isinstance(message, ParcelWeighed)
    assert message.weight_grams == 1200
    with pytest.raises(ContractViolationError, match="no upcaster"):
        MessageRegistry([ParcelWeighed]).decode(stored_v1)


def test_unknown_fields_are_ignored_so_adding_fields_is_not_breaking() -> None:
    registry = default_registry()
    order_id = uuid4()
    raw = Envelope(
        type="ReserveStock",
        schema_version=1,
        producer="t",
        correlation_id=str(order_id),
        payload={"order_id": str(order_id), "lines": [{"sku": "A", "quantity": 1, "new_field": 1}], "extra": True},
    )
    assert isinstance(registry.decode(raw), ReserveStock)


def test_every_service_has_a_dead_letter_topic() -> None:
    assert dead_letter_topic("inventory-service") == "oms.inventory.dlq"
    with pytest.raises(ValueError, match="unknown service"):
        dead_letter_topic("nope")


def test_a_stored_order_cancelled_v1_is_read_as_v2() -> None:
    order_id = uuid4()
    stored_v1 = Envelope(
        type="OrderCancelled",
        schema_version=1,
        producer="order-service",
        correlation_id=str(order_id),
        payload={"order_id": str(order_id), "reason": "customer phoned: duplicate order", "requested_by": "phone-desk"},
    )
    message = default_registry().decode(stored_v1)
    assert isinstance(message, OrderCancelled)
    assert message.note == "customer phoned: duplicate order"
    assert message.reason_code == "unspecified"
    assert message.customer_message == "Your order has been cancelled."
    assert message.requested_by == "phone-desk"
    assert "customer phoned" not in message.customer_message


def _level_changed(order_id: UUID | None) -> StockLevelChanged:
    return StockLevelChanged(
        sku="SKU-1",
        warehouse_id="WH-1",
        on_hand=5,
        reserved=2,
        available=3,
        safety_stock=0,
        on_hand_change=0,
        reserved_change=2,
        cause="reservation",
        order_id=order_id,
        sequence=4,
    )


def test_stock_events_are_keyed_by_sku_and_correlated_by_the_order_that_caused_them() -> None:
    registry = default_registry()
    order_id = uuid4()
    caused = registry.wrap(_level_changed(order_id), producer="inventory-service")
    assert _level_changed(order_id).key == "SKU-1"
    assert caused.correlation_id == str(order_id)
    assert registry.wrap(_level_changed(None), producer="inventory-service").correlation_id == "SKU-1"
    envelope, message = registry.parse_any(caused.to_bytes())
    assert message == _level_changed(order_id)
    # Readers of an order's stream only get messages about orders.
    with pytest.raises(ContractViolationError, match="not a message about an order"):
        registry.decode(envelope)
    assert generate()["StockLevelChanged.v1.json"].count('"x-key": "sku"') == 1
    assert generate()["StockReserved.v1.json"].count('"x-key": "order_id"') == 1
