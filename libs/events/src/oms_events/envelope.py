"""The envelope every OMS message travels in, on Kafka and in the event stores."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

ENVELOPE_VERSION = 1

ALWAYS_PRESENT = ("event_id", "occurred_at")
"""Fields with a default in the model (a producer need not choose them) that every envelope on the wire and
in a store has: the JSON Schema says they are required, so a consumer may rely on them."""


def _require_always_present(schema: dict[str, Any]) -> None:
    required = schema.setdefault("required", [])
    required.extend(name for name in ALWAYS_PRESENT if name not in required)


class TraceContext(BaseModel):
    """W3C trace context, so a trace follows an order across services."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    traceparent: str | None = None
    tracestate: str | None = None


class Envelope(BaseModel):
    """Metadata of one message plus its payload.

    `correlation_id` is the order id for everything about an order; `causation_id` is the
    `event_id` of the message that caused this one, so a timeline can be rebuilt as a tree.
    Unknown envelope fields are ignored so that adding fields later is not a breaking change.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_extra=_require_always_present)

    envelope_version: int = ENVELOPE_VERSION
    event_id: UUID = Field(default_factory=uuid4)
    type: str = Field(min_length=1)
    schema_version: int = Field(ge=1)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = Field(min_length=1)
    correlation_id: str = Field(min_length=1)
    causation_id: UUID | None = None
    trace_context: TraceContext = Field(default_factory=TraceContext)
    payload: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        return cls.model_validate_json(raw)
