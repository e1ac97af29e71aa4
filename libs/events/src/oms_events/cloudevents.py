"""The envelope as a CloudEvent (CloudEvents 1.0): one mapping for every place that speaks CloudEvents.

Webhook deliveries (structured mode, `application/cloudevents+json`) and the `ce_*` Kafka headers (binary
mode) both read `attributes`, so a receiver sees the same `id`, `source`, `type` and `subject` for an event
whichever way it gets it. The rules:

- `id`: the envelope's `event_id` (unique per event; a redelivered event keeps it, so receivers dedupe on it).
- `source`: `/oms/<producer>`, the producing service (`/oms/order-service`). The envelope's `producer` is
  always a service name, so `source` + `id` is unique as CloudEvents asks.
- `type`: `<TYPE_PREFIX>.<message type>.v<schema version>`, e.g. `example.oms.OrderPlaced.v1`: reverse-DNS
  as CloudEvents recommends, and a new schema version is a new type, so a receiver routing on `type`
  never gets a shape it did not ask for. `message_type_of` reads it back.
- `time`: `occurred_at` (RFC 3339, UTC).
- `subject`: what the event is about, the message's Kafka key: the order id, or the sku of a stock event.
- `datacontenttype`: `application/json`; `data`: the envelope's `payload`.
- Extensions (lowercase, as the spec requires): `correlationid`, `causationid` (when set), `schemaversion`,
  and `traceparent`/`tracestate` of the Distributed Tracing extension (when set).
"""

import json
import re
from typing import Any, Final

from oms_events.envelope import Envelope
from oms_events.messages import message_class

SPEC_VERSION: Final = "1.0"
TYPE_PREFIX: Final = "example.oms"
"""Reverse DNS of the product's domain; the message type and its version follow."""
SOURCE_PREFIX: Final = "/oms/"
DATA_CONTENT_TYPE: Final = "application/json"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
"""The HTTP Content-Type of a structured-mode CloudEvent (JSON event format)."""

_TYPE: Final = re.compile(rf"^{re.escape(TYPE_PREFIX)}\.([A-Za-z][A-Za-z0-9]*)\.v([1-9][0-9]*)$")


def ce_type(message_type: str, schema_version: int) -> str:
    return f"{TYPE_PREFIX}.{message_type}.v{schema_version}"


def message_type_of(cloudevent_type: str) -> tuple[str, int]:
    """(message type, schema version) of a CloudEvents `type` this mapping wrote; ValueError otherwise."""
    match = _TYPE.match(cloudevent_type)
    if match is None:
        raise ValueError(f"not an OMS CloudEvents type: {cloudevent_type!r}")
    return match.group(1), int(match.group(2))


def ce_source(producer: str) -> str:
    return f"{SOURCE_PREFIX}{producer}"


def subject_of(envelope: Envelope) -> str:
    """The message's key (order id, or sku for a stock event), read from the payload by the message's
    `key_field`; the correlation id for a type this contract does not know."""
    known = message_class(envelope.type)
    if known is not None:
        value = envelope.payload.get(known.key_field)
        if value is not None:
            return str(value)
    return envelope.correlation_id


def _rfc3339(envelope: Envelope) -> str:
    return envelope.occurred_at.isoformat().replace("+00:00", "Z")


def attributes(envelope: Envelope) -> dict[str, str]:
    """Every CloudEvents attribute of an envelope (context attributes and extensions), as strings.

    Binary mode puts each in a header (`ce_<name>` on Kafka, `ce-<name>` on HTTP); structured mode
    puts them beside `data`."""
    found = {
        "specversion": SPEC_VERSION,
        "id": str(envelope.event_id),
        "source": ce_source(envelope.producer),
        "type": ce_type(envelope.type, envelope.schema_version),
        "time": _rfc3339(envelope),
        "subject": subject_of(envelope),
        "datacontenttype": DATA_CONTENT_TYPE,
        "correlationid": envelope.correlation_id,
        "schemaversion": str(envelope.schema_version),
    }
    if envelope.causation_id is not None:
        found["causationid"] = str(envelope.causation_id)
    if envelope.trace_context.traceparent:
        found["traceparent"] = envelope.trace_context.traceparent
    if envelope.trace_context.tracestate:
        found["tracestate"] = envelope.trace_context.tracestate
    return found


def structured(envelope: Envelope) -> dict[str, Any]:
    """The event in the JSON event format (structured mode): the attributes plus `data`."""
    return {**attributes(envelope), "data": envelope.payload}


def structured_json(envelope: Envelope) -> bytes:
    """The structured-mode body, compact JSON in UTF-8 (what a webhook signs and sends)."""
    return json.dumps(structured(envelope), separators=(",", ":"), ensure_ascii=False).encode()
