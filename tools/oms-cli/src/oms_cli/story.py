"""One order's whole story: every record keyed by the order on every topic, in time order."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from oms_events import default_registry
from oms_events.topics import ALL_TOPICS
from oms_runtime import kafka_io
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.logging import mask_text

_SKIP_FIELDS = {"order_id"}


@dataclass(frozen=True)
class Chapter:
    at: datetime
    topic: str
    type: str
    producer: str
    detail: str
    event_id: str | None
    causation_id: str | None
    dead_letter_reason: str | None = None


def summarise(payload: dict[str, object], width: int = 160) -> str:
    """The payload's fields but the order id, as compact JSON, with personal data masked."""
    shown = {k: v for k, v in payload.items() if k not in _SKIP_FIELDS}
    text = mask_text(json.dumps(shown, ensure_ascii=False, separators=(",", ":"), default=str))
    return text if len(text) <= width else text[: width - 1] + "…"


def chapter(record: kafka_io.Record) -> Chapter:
    registry = default_registry()
    reason = record.header("dlq.reason")
    received = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    try:
        envelope = registry.parse_envelope(record.value)
    except ValueError:
        return Chapter(
            received, record.topic, "(unreadable)", "?", mask_text(repr(record.value[:120])), None, None, reason
        )
    # A dead letter happened when it was dead-lettered, not when its message was first written.
    at = received if reason is not None else envelope.occurred_at
    return Chapter(
        at=at,
        topic=record.topic,
        type=envelope.type,
        producer=envelope.producer,
        detail=summarise(envelope.payload),
        event_id=str(envelope.event_id),
        causation_id=str(envelope.causation_id) if envelope.causation_id else None,
        dead_letter_reason=reason,
    )


async def story(
    kafka: KafkaConnection,
    order_id: str,
    topics: Sequence[str] | None = None,
    progress: kafka_io.Progress | None = None,
    on_total: kafka_io.Progress | None = None,
) -> list[Chapter]:
    """Reads every topic (or the given ones) for records keyed by the order; oldest first."""
    names = list(topics) if topics is not None else [t.name for t in ALL_TOPICS]
    partitions = await kafka_io.partitions_of(kafka, names)
    if on_total is not None:
        on_total(await kafka_io.count_records(kafka, partitions))
    records = await kafka_io.read(kafka, partitions, key=order_id, progress=progress)
    return sorted((chapter(r) for r in records), key=lambda c: (c.at, c.topic))
