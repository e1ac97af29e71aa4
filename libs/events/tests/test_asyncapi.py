"""The AsyncAPI document: generated from the code, checked in, and covering every topic and message."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from oms_events import asyncapi
from oms_events.messages import MESSAGE_TYPES
from oms_events.routes import CONSUMERS, PUBLISHERS
from oms_events.topics import ALL_TOPICS, SERVICES, dead_letter_topic

REPO = Path(__file__).resolve().parents[3]


def test_the_checked_in_document_is_current() -> None:
    assert asyncapi.differences() == [], "run: uv run --frozen python -m oms_events.schema --write"


def test_every_topic_is_a_channel_with_exactly_the_messages_of_that_topic() -> None:
    document = asyncapi.generate()
    by_address = {c["address"]: c for c in document["channels"].values()}
    assert set(by_address) == {t.name for t in ALL_TOPICS}
    known_topics = {t.name for t in ALL_TOPICS}
    for cls in MESSAGE_TYPES:
        assert cls.topic in known_topics, f"{cls.message_type} names a topic oms_events.topics does not declare"
        assert cls.message_type in by_address[cls.topic]["messages"]
    for spec in ALL_TOPICS:
        channel = by_address[spec.name]
        assert channel["messages"], f"{spec.name} documents no message"
        assert channel["bindings"]["kafka"]["partitions"] == spec.partitions
    for service in SERVICES:
        assert list(by_address[dead_letter_topic(service)]["messages"]) == ["DeadLetter"]


def test_every_reference_resolves() -> None:
    document = json.loads(asyncapi.render())

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            assert part in target, f"dangling {ref}"
            target = target[part]


def test_a_message_payload_is_the_envelope_around_the_model() -> None:
    message = asyncapi.generate()["components"]["messages"]["OrderPlaced"]
    envelope, specific = message["payload"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/Envelope"}
    assert specific["properties"]["payload"] == {"$ref": "#/components/schemas/OrderPlaced"}
    assert message["bindings"]["kafka"]["key"]["format"] == "uuid"
    document = asyncapi.generate()
    assert message["headers"] == {"$ref": "#/components/schemas/RecordHeaders"}
    headers = document["components"]["schemas"]["RecordHeaders"]
    assert "traceparent" in headers["properties"]
    # The CloudEvents Kafka binding's binary-mode headers, required on every record the OMS writes.
    assert {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"} <= set(
        headers["required"]
    )


def test_the_document_is_valid_asyncapi_3() -> None:
    """Against the AsyncAPI initiative's JSON Schema of 3.0.0 (`make asyncapi-schema` unpacks it into .local)."""
    found = sorted(REPO.glob(".local/asyncapi-specs/*/asyncapi-3.0.0.json"))
    if not found:
        pytest.fail("the AsyncAPI 3.0.0 JSON Schema is missing: run `make asyncapi-schema`")
    validator = jsonschema.Draft7Validator(json.loads(found[-1].read_text()))
    document = json.loads(asyncapi.render())
    problems = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(document)]
    assert problems == []
    broken = {**document, "operations": {"x": {"action": "publish", "channel": {"$ref": "#/channels/x"}}}}
    assert list(validator.iter_errors(broken)), "the schema accepts anything: it is not the AsyncAPI one"


def test_the_servers_and_who_sends_and_receives_each_message() -> None:
    document = asyncapi.generate()
    assert {s["protocol"] for s in document["servers"].values()} == {"kafka"}
    operations = document["operations"].values()
    for topic, sender in PUBLISHERS.items():
        [send] = [
            op
            for op in operations
            if op["action"] == "send" and op["channel"]["$ref"].endswith(topic.replace(".", "-"))
        ]
        assert send["tags"] == [{"name": sender}]
    placed = "#/channels/oms-orders-events/messages/OrderPlaced"
    readers = {
        op["bindings"]["kafka"]["groupId"]["enum"][0]
        for op in operations
        if op["action"] == "receive" and {"$ref": placed} in op["messages"]
    }
    assert readers == {g.group_id for g in CONSUMERS if "OrderPlaced" in g.message_types}
    assert readers == {"inventory-service-demand", "notification-service", "notification-service-webhooks"}
