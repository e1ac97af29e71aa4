"""The broker's side of a run: messages per order from the topics' end offsets, the consumer lag that says
the system has settled, and the ceiling of the Kafka client itself on the same broker.

The ceiling is one Python process with aiokafka that produces records (idempotent producer, acks=all,
a few ms of linger, like the services' own producer) while consuming them in a consumer group and
committing after every polled batch: the smallest loop a service's consumer runs. The system's
messages per second divided by it says how much of the client library's capacity the system uses.
"""

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchkit.stats import rate
from oms_runtime.kafka_connection import KafkaConnection

SYSTEM_PREFIX = "oms."


async def partitions_of(
    kafka: KafkaConnection, prefix: str = SYSTEM_PREFIX, topics: Sequence[str] | None = None
) -> list[TopicPartition]:
    """Every partition of the given topics, or of every topic whose name starts with the prefix."""
    admin = AIOKafkaAdminClient(**kafka.client_args(), client_id="oms-bench")
    await admin.start()
    try:
        names = (
            sorted(topics)
            if topics is not None
            else sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        )
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    return sorted(
        (TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]),
        key=lambda tp: (tp.topic, tp.partition),
    )


async def end_offsets(kafka: KafkaConnection, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**kafka.client_args(), enable_auto_commit=False, client_id="oms-bench")
    await consumer.start()
    try:
        found: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return found
    finally:
        await consumer.stop()


def messages_per_topic(before: Mapping[TopicPartition, int], after: Mapping[TopicPartition, int]) -> dict[str, int]:
    """Records written per topic between two readings (a partition absent before counts from 0)."""
    written: dict[str, int] = {}
    for tp, end in after.items():
        written[tp.topic] = written.get(tp.topic, 0) + end - before.get(tp, 0)
    return written


async def skip_to_end(kafka: KafkaConnection, groups: Mapping[str, Sequence[str]]) -> None:
    """Commits the end of every partition each group reads (group -> topics): a fresh database must not
    be fed the messages of earlier runs (they belong to another database)."""
    for group, topics in groups.items():
        partitions = await partitions_of(kafka, topics=topics)
        consumer = AIOKafkaConsumer(**kafka.client_args(), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()


class LagWatch:
    """Records the groups have not committed yet, summed over the partitions of the topics each reads.
    Keeps its clients between readings, so polling it while the system settles costs the broker little."""

    def __init__(self, kafka: KafkaConnection, groups: Mapping[str, Sequence[str]]) -> None:
        self._kafka = kafka
        self._groups = dict(groups)
        self._partitions: dict[str, list[TopicPartition]] = {}
        self._admin = AIOKafkaAdminClient(**kafka.client_args(), client_id="oms-bench-lag")
        self._consumer = AIOKafkaConsumer(**kafka.client_args(), enable_auto_commit=False, client_id="oms-bench-lag")

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()
        for group, topics in self._groups.items():
            self._partitions[group] = await partitions_of(self._kafka, topics=topics)

    async def total(self) -> int:
        lag = 0
        for group, partitions in self._partitions.items():
            committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
            ends = await self._consumer.end_offsets(partitions)
            for tp in partitions:
                done = committed.get(tp)
                # No offset yet: the whole partition is still to be read.
                lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return lag

    async def close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()


async def recreate_topics(kafka: KafkaConnection, prefix: str = SYSTEM_PREFIX, timeout_s: float = 60.0) -> None:
    """Deletes every topic with the prefix and waits until the broker no longer lists them (the services
    create them again at start, with the partition count asked for)."""
    admin = AIOKafkaAdminClient(**kafka.client_args(), client_id="oms-bench")
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        deadline = time.monotonic() + timeout_s
        while any(t.startswith(prefix) for t in await admin.list_topics()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics {prefix}* still listed {timeout_s:.0f} s after their deletion")
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


@dataclass(frozen=True)
class RawPipeline:
    messages: int
    seconds: float
    record_bytes: int
    partitions: int

    @property
    def per_second(self) -> float:
        return rate(self.messages, self.seconds)


async def raw_pipeline(
    kafka: KafkaConnection, messages: int, record_bytes: int = 600, partitions: int = 12
) -> RawPipeline:
    """Produce -> consume -> commit `messages` records through a throwaway topic; timed from the first send
    to the commit of the last record."""
    topic = f"bench.raw-pipeline.{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka.client_args(), client_id="oms-bench-raw")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        consumer = AIOKafkaConsumer(
            topic,
            **kafka.client_args(),
            group_id=f"bench-raw-{uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1000,
        )
        producer = AIOKafkaProducer(**kafka.client_args(), enable_idempotence=True, acks="all", linger_ms=5)
        await consumer.start()
        await producer.start()
        try:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            value = b"x" * record_bytes
            began = time.monotonic()

            async def produce() -> None:
                batch = []
                for i in range(messages):
                    batch.append(await producer.send(topic, value, key=str(i % 1024).encode()))
                    if len(batch) >= 2000:
                        await asyncio.gather(*batch)
                        batch.clear()
                await asyncio.gather(*batch)

            sending = asyncio.create_task(produce())
            received = 0
            while received < messages:
                polled = await consumer.getmany(timeout_ms=500, max_records=1000)
                received += sum(len(records) for records in polled.values())
                if polled:
                    await consumer.commit()
                if sending.done() and sending.exception() is not None:
                    raise RuntimeError("the raw pipeline's producer failed") from sending.exception()
            seconds = time.monotonic() - began
            await sending
        finally:
            await producer.stop()
            await consumer.stop()
        return RawPipeline(messages, seconds, record_bytes, partitions)
    finally:
        await admin.delete_topics([topic])
        await admin.close()
