"""Reading whole topics (for one order, or everything) and publishing records back, for the ops tools.

Shared by the `oms` CLI and the dead-letter API every service serves (`oms_runtime.dead_letter_api`), so
both read a topic the same way: without a consumer group, nothing committed, no service's group disturbed.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from oms_runtime.kafka_connection import KafkaConnection, connection_of

CLIENT_ID = "oms-ops"

Progress = Callable[[int], None]
"""Told how many more records were read (for a progress bar)."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return None


async def partitions_of(kafka: KafkaConnection | str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist (a topic not created yet has none)."""
    admin = AIOKafkaAdminClient(**connection_of(kafka).client_args(), client_id=CLIENT_ID)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d["error_code"] == 0
        for p in sorted(d["partitions"], key=lambda p: p["partition"])
    ]


async def count_records(kafka: KafkaConnection | str, partitions: Sequence[TopicPartition]) -> int:
    consumer = AIOKafkaConsumer(**connection_of(kafka).client_args(), enable_auto_commit=False, client_id=CLIENT_ID)
    await consumer.start()
    try:
        begin = await consumer.beginning_offsets(list(partitions))
        end = await consumer.end_offsets(list(partitions))
    finally:
        await consumer.stop()
    return sum(end[tp] - begin[tp] for tp in partitions)


async def read(
    kafka: KafkaConnection | str,
    partitions: Sequence[TopicPartition],
    *,
    key: str | None = None,
    progress: Progress | None = None,
) -> list[Record]:
    """Every record of the partitions up to their current end, optionally only one key.

    Without a consumer group: nothing is committed, and no service's group is disturbed.
    """
    if not partitions:
        return []
    wanted_key = key.encode() if key is not None else None
    consumer = AIOKafkaConsumer(
        **connection_of(kafka).client_args(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=CLIENT_ID,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(partitions))
        begin = await consumer.beginning_offsets(list(partitions))
        end = await consumer.end_offsets(list(partitions))
        for tp, offset in begin.items():
            consumer.seek(tp, offset)
        remaining = {tp for tp in partitions if end[tp] > begin[tp]}
        found: list[Record] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= end[tp]:
                        continue  # written after we started: not part of this snapshot
                    if wanted_key is None or r.key == wanted_key:
                        found.append(
                            Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers or ()))
                        )
                if progress is not None:
                    progress(len(records))
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


class Publisher:
    """An idempotent producer for a series of sends, each acknowledged before the next."""

    def __init__(self, kafka: KafkaConnection | str) -> None:
        self._producer = AIOKafkaProducer(
            **connection_of(kafka).client_args(), enable_idempotence=True, acks="all", client_id=CLIENT_ID
        )

    async def __aenter__(self) -> "Publisher":
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
