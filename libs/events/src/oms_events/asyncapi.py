"""The AsyncAPI document of the contract, generated from the code and checked in as libs/events/asyncapi.json.

One channel per topic of `oms_events.topics` (address = topic name), each with the messages the models
say travel on it; a message's payload is the envelope with the model's schema as `payload`; the Kafka
key and headers are documented as message bindings and headers. Dead-letter channels carry the
original bytes of any message plus the `dlq.*` headers. The `operations` say who sends and who receives
what on each channel, from `oms_events.routes` (which tests/deploy checks against the services' real
consumers and publishers): one `send` per topic a service writes, one `receive` per consumer group and
topic with the message types that group handles.

python -m oms_events.asyncapi --write    regenerate
python -m oms_events.asyncapi --check    exit 1 when the checked-in document differs from the models
"""

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from oms_events import cloudevents
from oms_events.envelope import Envelope, TraceContext
from oms_events.generated import GeneratedFiles, command
from oms_events.messages import MESSAGE_TYPES
from oms_events.routes import CONSUMERS, OPS_CLI, PUBLISHERS, consuming_services, message_types_on
from oms_events.topics import ALL_TOPICS, SERVICES, dead_letter_topic
from oms_events.version import VERSION

DOCUMENT = Path(__file__).resolve().parents[2] / "asyncapi.json"
_REF = "#/components/schemas/{model}"


def _channel_id(topic: str) -> str:
    return topic.replace(".", "-")


def _kafka_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "The message type, e.g. OrderPlaced"},
            "schema_version": {"type": "string", "description": "The payload's schema version"},
            "event_id": {"type": "string", "format": "uuid"},
            "correlation_id": {"type": "string", "description": "The order id"},
            "traceparent": {"type": "string", "description": "W3C trace context of the trace the message belongs to"},
            # The CloudEvents Kafka protocol binding, binary mode (oms_events.cloudevents): the value is the data.
            "ce_specversion": {"type": "string", "const": cloudevents.SPEC_VERSION},
            "ce_id": {"type": "string", "format": "uuid", "description": "CloudEvents id: the event_id"},
            "ce_source": {"type": "string", "description": "CloudEvents source: /oms/<producing service>"},
            "ce_type": {
                "type": "string",
                "description": f"CloudEvents type: {cloudevents.TYPE_PREFIX}.<message type>.v<schema version>",
            },
            "ce_time": {"type": "string", "format": "date-time", "description": "CloudEvents time: occurred_at"},
            "ce_subject": {"type": "string", "description": "CloudEvents subject: the order id, or the sku"},
            "ce_correlationid": {"type": "string", "description": "CloudEvents extension: the correlation id"},
            "ce_causationid": {"type": "string", "description": "CloudEvents extension: the causing event's id"},
            "ce_schemaversion": {"type": "string", "description": "CloudEvents extension: the schema version"},
            "ce_traceparent": {"type": "string", "description": "CloudEvents Distributed Tracing extension"},
            "content-type": {"type": "string", "const": cloudevents.DATA_CONTENT_TYPE},
        },
        "required": [
            "type",
            "schema_version",
            "event_id",
            "correlation_id",
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "content-type",
        ],
    }


def _dead_letter_headers() -> dict[str, Any]:
    def text(description: str) -> dict[str, str]:
        return {"type": "string", "description": description}

    return {
        "type": "object",
        "description": "The original record's headers, plus:",
        "properties": {
            "dlq.reason": text("Why the record could not be processed, naming the bad fields"),
            "dlq.consumer": text("The consumer group that gave up on it"),
            "dlq.source_topic": text("Where the record came from"),
            "dlq.source_partition": text("Its partition there"),
            "dlq.source_offset": text("Its offset there"),
            "dlq.failed_at": text("When (ISO 8601, UTC)"),
            "dlq.redriven_by": text("Set by `oms dlq redrive` on the re-published copy: who redrove it"),
        },
        "required": ["dlq.reason", "dlq.consumer", "dlq.source_topic", "dlq.source_partition", "dlq.source_offset"],
    }


SERVERS: dict[str, Any] = {
    "kubernetes": {
        "host": "oms-kafka-kafka-bootstrap:9092",
        "protocol": "kafka",
        "description": "The Strimzi cluster `oms-kafka` of deploy/k8s, from inside its namespace",
    },
    "local": {
        "host": "127.0.0.1:9092",
        "protocol": "kafka",
        "description": "The single-node broker of `make run` (deploy/local/infra.sh)",
    },
}


def _operation(
    action: Literal["send", "receive"], who: str, topic: str, names: list[str], *, group: str | None = None
) -> dict[str, Any]:
    channel = _channel_id(topic)
    verb = "sends" if action == "send" else f"receives (consumer group {group})" if group else "receives"
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "title": f"{who} {verb} on {topic}",
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names],
        "tags": [{"name": who}],
    }
    kafka: dict[str, Any] = {"clientId": {"type": "string", "enum": [who]}, "bindingVersion": "0.5.0"}
    if group is not None:
        kafka["groupId"] = {"type": "string", "enum": [group]}
    operation["bindings"] = {"kafka": kafka}
    return operation


def operations() -> dict[str, Any]:
    """Who sends and who receives which messages on which channel (`oms_events.routes`)."""
    found: dict[str, Any] = {}
    for topic, sender in PUBLISHERS.items():
        found[f"{sender}.send.{_channel_id(topic)}"] = _operation("send", sender, topic, list(message_types_on(topic)))
    for service in consuming_services():
        topic = dead_letter_topic(service)
        found[f"{service}.send.{_channel_id(topic)}"] = _operation("send", service, topic, ["DeadLetter"])
        found[f"{OPS_CLI}.receive.{_channel_id(topic)}"] = _operation("receive", OPS_CLI, topic, ["DeadLetter"])
    for group in CONSUMERS:
        for topic in group.topics:
            names = sorted(set(message_types_on(topic)) & group.message_types)
            key = f"{group.group_id}.receive.{_channel_id(topic)}"
            found[key] = _operation("receive", group.service, topic, names, group=group.group_id)
    return found


def generate() -> dict[str, Any]:
    classes: list[type[BaseModel]] = [*MESSAGE_TYPES, Envelope, TraceContext]
    models: list[tuple[type[BaseModel], Literal["validation"]]] = [(cls, "validation") for cls in classes]
    keys, definitions = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))

    messages: dict[str, Any] = {}
    for cls in MESSAGE_TYPES:
        payload_ref = keys[(cls, "validation")]
        messages[cls.message_type] = {
            "name": cls.message_type,
            "title": f"{cls.message_type} v{cls.schema_version}",
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else cls.message_type,
            "contentType": "application/json",
            "tags": [{"name": cls.message_kind}],
            "headers": {"$ref": "#/components/schemas/RecordHeaders"},
            "payload": {
                "allOf": [
                    {"$ref": _REF.format(model="Envelope")},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": cls.message_type},
                            "schema_version": {"const": cls.schema_version},
                            "payload": payload_ref,
                        },
                    },
                ]
            },
            "correlationId": {"location": "$message.payload#/correlation_id", "description": "The order id"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "format": "uuid", "description": "The order id"},
                    "bindingVersion": "0.5.0",
                }
            },
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "A record a consumer could not process",
        "summary": "The original key and bytes (any message, or unreadable bytes), with the reason in headers",
        "contentType": "application/octet-stream",
        "headers": _dead_letter_headers(),
        "payload": {"description": "The original record's value, byte for byte"},
    }

    dead_letter_topics = {dead_letter_topic(s): s for s in SERVICES}
    channels: dict[str, Any] = {}
    for spec in ALL_TOPICS:
        if spec.name in dead_letter_topics:
            on_topic = ["DeadLetter"]
        else:
            on_topic = sorted(cls.message_type for cls in MESSAGE_TYPES if cls.topic == spec.name)
        channels[_channel_id(spec.name)] = {
            "address": spec.name,
            "title": spec.name,
            "description": spec.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in on_topic},
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "topicConfiguration": {"retention.ms": spec.retention_ms, "cleanup.policy": ["delete"]},
                    "bindingVersion": "0.5.0",
                }
            },
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "OMS event contract",
            "version": VERSION,
            "description": (
                "Every Kafka topic of the order management system and the messages on it. Generated from "
                "libs/events (python -m oms_events.asyncapi --write); the JSON Schemas of each message are "
                "also in libs/events/schemas. Every message about an order is keyed by the order id. Fields "
                "are only added, never renamed or retyped; a breaking change is a new schema_version."
            ),
        },
        "defaultContentType": "application/json",
        "servers": SERVERS,
        "channels": channels,
        "operations": operations(),
        "components": {"messages": messages, "schemas": {**schemas, "RecordHeaders": _kafka_headers()}},
    }


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


def generated_files(path: Path = DOCUMENT) -> GeneratedFiles:
    return GeneratedFiles(path.parent, lambda: {path.name: render()})


def differences(path: Path = DOCUMENT) -> list[str]:
    return generated_files(path).differences()


def main() -> int:
    return command(__doc__, [generated_files()], report="{problem} (run: python -m oms_events.asyncapi --write)")


if __name__ == "__main__":
    raise SystemExit(main())
