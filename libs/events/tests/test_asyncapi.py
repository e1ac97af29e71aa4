"""The AsyncAPI document: generated from the code, checked in, and covering every topic and message."""

import json
from typing import Any

from oms_events import asyncapi
from oms_events.messages import MESSAGE_TYPES
from oms_events.topics import ALL_TOPICS, SERVICES, dead_letter_topic


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
    assert "traceparent" in message["headers"]["properties"]
