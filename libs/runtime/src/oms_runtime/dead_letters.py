"""Dead letters: read them with their reasons, redrive them to where they came from, or discard them.

A dead-letter topic keeps every record (Kafka has no delete), so what an operator did with one is
recorded in the `dead_letter_actions` table (schema `oms_ops`): who redrove or discarded which record,
when and why. A record that was acted on is not redriven again unless forced.

Redriving publishes the original key, bytes and headers (without the `dlq.*` ones, plus
`dlq.redriven_from` and `dlq.redriven_by`) to the source topic, one record at a time and in the order
they were dead-lettered, so that an order's messages arrive in their original order.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from oms_events.topics import SERVICES, dead_letter_topic
from oms_runtime import kafka_io
from oms_runtime.db import Database
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.messaging import REDACTED_HEADER

OPS_SCHEMA = "oms_ops"

metadata = MetaData()
actions_table = Table(
    "dead_letter_actions",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("dead_letter_topic", String(200), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("message_key", String(200)),
    Column("action", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("operator", String(200), nullable=False),
    Column("republished_to", String(200)),
    Column("acted_at", DateTime(timezone=True), nullable=False),
    Index("ix_dead_letter_actions_record", "dead_letter_topic", "partition", "offset"),
)


def resolve_topic(service_or_topic: str) -> str:
    """`inventory-service` -> `oms.inventory.dlq`; a topic name is taken as it is."""
    if service_or_topic in SERVICES:
        return dead_letter_topic(service_or_topic)
    if "." in service_or_topic:
        return service_or_topic
    raise ValueError(f"{service_or_topic!r} is neither a service ({', '.join(SERVICES)}) nor a topic name")


@dataclass(frozen=True)
class DeadLetter:
    record: kafka_io.Record
    reason: str
    consumer: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    failed_at: str | None
    message_type: str | None
    actions: tuple[dict[str, Any], ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def key(self) -> str | None:
        return self.record.key.decode(errors="replace") if self.record.key is not None else None

    @property
    def status(self) -> str:
        return self.actions[-1]["action"] if self.actions else "pending"

    @classmethod
    def of(cls, record: kafka_io.Record, actions: Sequence[dict[str, Any]] = ()) -> "DeadLetter":
        def number(name: str) -> int | None:
            value = record.header(name)
            return int(value) if value is not None and value.lstrip("-").isdigit() else None

        return cls(
            record=record,
            reason=record.header("dlq.reason") or "(no reason recorded)",
            consumer=record.header("dlq.consumer") or "?",
            source_topic=record.header("dlq.source_topic"),
            source_partition=number("dlq.source_partition"),
            source_offset=number("dlq.source_offset"),
            failed_at=record.header("dlq.failed_at"),
            message_type=record.header("type") or _type_from_value(record.value),
            actions=tuple(actions),
        )

    def pretty_value(self) -> str:
        try:
            return json.dumps(json.loads(self.record.value), indent=2, ensure_ascii=False)
        except (ValueError, UnicodeDecodeError):
            return repr(self.record.value)


def _type_from_value(value: bytes) -> str | None:
    try:
        parsed = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    found = parsed.get("type") if isinstance(parsed, dict) else None
    return found if isinstance(found, str) else None


def parse_ref(ref: str) -> tuple[int, int]:
    """`12` (partition 0) or `0:12` -> (partition, offset)."""
    partition, _, offset = ref.rpartition(":")
    try:
        return (int(partition) if partition else 0), int(offset)
    except ValueError:
        raise ValueError(f"{ref!r} is not an offset (12) or partition:offset (0:12)") from None


class Ledger:
    """What operators did with dead letters."""

    def __init__(self, database_url: str, schema: str = OPS_SCHEMA) -> None:
        self.db = Database(database_url, schema, pool_size=2)

    async def __aenter__(self) -> "Ledger":
        await self.db.create_schema(metadata)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.db.dispose()

    async def actions(self, topic: str) -> dict[tuple[int, int], list[dict[str, Any]]]:
        async with self.db.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(actions_table)
                        .where(actions_table.c.dead_letter_topic == topic)
                        .order_by(actions_table.c.id)
                    )
                )
                .mappings()
                .all()
            )
        found: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for row in rows:
            found.setdefault((row["partition"], row["offset"]), []).append(dict(row))
        return found

    async def record(
        self, letter: DeadLetter, action: str, reason: str, operator: str, republished_to: str | None = None
    ) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                insert(actions_table).values(
                    dead_letter_topic=letter.record.topic,
                    partition=letter.record.partition,
                    offset=letter.record.offset,
                    message_key=letter.key,
                    action=action,
                    reason=reason,
                    operator=operator,
                    republished_to=republished_to,
                    acted_at=datetime.now(UTC),
                )
            )


async def load(
    kafka: KafkaConnection | str,
    ledger: Ledger,
    topic: str,
    *,
    order_id: str | None = None,
    progress: kafka_io.Progress | None = None,
) -> list[DeadLetter]:
    """The dead letters of a topic (optionally one order's), oldest first, with what was done to them."""
    partitions = await kafka_io.partitions_of(kafka, [topic])
    if not partitions:
        raise LookupError(f"topic {topic} does not exist")
    records = await kafka_io.read(kafka, partitions, key=order_id, progress=progress)
    actions = await ledger.actions(topic)
    letters = [DeadLetter.of(r, actions.get((r.partition, r.offset), ())) for r in records]
    return sorted(letters, key=lambda d: (d.record.timestamp_ms, d.record.partition, d.record.offset))


def redrive_record(letter: DeadLetter, operator: str) -> tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]:
    if not letter.source_topic:
        raise ValueError(f"dead letter {letter.ref} names no source topic; it cannot be redriven")
    if letter.record.header(REDACTED_HEADER):
        # Sent again without its token, a payment command would be declined and the order given up.
        raise ValueError(
            f"dead letter {letter.ref} had its payment token redacted; it cannot be redriven as it is: retry the "
            "order's saga step (order-service ops), or have the sender submit again"
        )
    headers = [(k, v) for k, v in letter.record.headers if not k.startswith("dlq.")]
    headers += [
        ("dlq.redriven_from", f"{letter.record.topic}:{letter.ref}".encode()),
        ("dlq.redriven_by", operator.encode()),
    ]
    return letter.source_topic, letter.record.key, letter.record.value, headers


@dataclass(frozen=True)
class RedriveResult:
    redriven: list[DeadLetter]
    skipped: list[DeadLetter]


async def redrive(
    kafka: KafkaConnection | str,
    ledger: Ledger,
    letters: Sequence[DeadLetter],
    *,
    operator: str,
    reason: str,
    force: bool = False,
    progress: kafka_io.Progress | None = None,
) -> RedriveResult:
    """Republishes the letters to their source topics in the order given; records each one.

    Letters already redriven or discarded are skipped unless `force`.
    """
    redriven, skipped = [], []
    records = [redrive_record(letter, operator) for letter in letters]  # refuses before sending anything
    async with kafka_io.Publisher(kafka) as publisher:
        for letter, record in zip(letters, records, strict=True):
            if letter.status != "pending" and not force:
                skipped.append(letter)
            else:
                # One at a time, acknowledged before the next: the original order is kept.
                await publisher.send(*record)
                await ledger.record(letter, "redriven", reason, operator, republished_to=record[0])
                redriven.append(letter)
            if progress:
                progress(1)
    return RedriveResult(redriven, skipped)


async def discard(ledger: Ledger, letter: DeadLetter, *, operator: str, reason: str, force: bool = False) -> None:
    if not reason.strip():
        raise ValueError("a discard needs a reason")
    if letter.status != "pending" and not force:
        raise ValueError(f"dead letter {letter.ref} was already {letter.status}")
    await ledger.record(letter, "discarded", reason, operator)
