"""Kafka plumbing: topic creation, the idempotent producer and consumer lag."""

import asyncio
import dataclasses
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import InvalidPartitionsError

from oms_events.topics import DEFAULT_PARTITIONS, TopicSpec
from oms_runtime.kafka_connection import KafkaConnection, connection_of
from oms_runtime.logging import get_logger
from oms_runtime.settings import ServiceSettings

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36


def with_partitions(specs: Iterable[TopicSpec], partitions: int) -> list[TopicSpec]:
    """The specs as deployed: a keyed topic (one left at DEFAULT_PARTITIONS) gets `partitions`, the others
    (the one-partition dead-letter topics) keep their own count."""
    if partitions < 1:
        raise ValueError(f"a topic needs at least one partition, not {partitions}")
    return [dataclasses.replace(s, partitions=partitions) if s.partitions == DEFAULT_PARTITIONS else s for s in specs]


async def ensure_topics(
    kafka: KafkaConnection | str,
    specs: Iterable[TopicSpec],
    replication_factor: int = 1,
    timeout_s: float = 60.0,
    partitions: int | None = None,
) -> None:
    """Creates the topics that do not exist yet, adds partitions to those that have fewer than wanted,
    and waits until every partition has a leader.

    `partitions` is the count of the keyed topics (see `with_partitions`); unset, the KAFKA_TOPIC_PARTITIONS
    setting. Kafka can add partitions but never remove them, so a topic with more keeps them. Adding
    partitions moves some keys to another partition: records of one order already on the topic and records
    produced after the change may then be read out of order, so raise the count while the topics are drained.

    The broker does not auto-create topics. Waiting matters: a consumer that subscribes before its
    topics' metadata is complete gets no partitions of them until its next metadata refresh.
    """
    count = partitions if partitions is not None else ServiceSettings().kafka_topic_partitions
    wanted = with_partitions(specs, count)
    admin = AIOKafkaAdminClient(**connection_of(kafka).client_args(), client_id="oms-topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if missing:
            await _create(admin, missing, replication_factor)
        await _add_partitions(admin, [s for s in wanted if s.name in existing])
        await _wait_until_ready(admin, wanted, timeout_s)
    finally:
        await admin.close()


async def _add_partitions(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    have = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics([s.name for s in specs])}
    short = {s.name: s.partitions for s in specs if have.get(s.name, s.partitions) < s.partitions}
    if short:
        try:
            await admin.create_partitions({name: NewPartitions(total_count=n) for name, n in short.items()})
        except InvalidPartitionsError:
            # Another replica added them first (the count is checked again while waiting for the leaders).
            return
        log.warning(
            "partitions added: keys of records already on these topics may now map to another partition",
            topics={name: f"{have[name]} -> {n}" for name, n in short.items()},
        )


async def _create(admin: AIOKafkaAdminClient, missing: list[TopicSpec], replication_factor: int) -> None:
    response = await admin.create_topics(
        [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=replication_factor,
                topic_configs={"retention.ms": str(s.retention_ms)},
            )
            for s in missing
        ]
    )
    for topic, code, *_ in response.topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"could not create topic {topic}: error code {code}")
    log.info("topics created", topics=[s.name for s in missing])


async def _wait_until_ready(admin: AIOKafkaAdminClient, specs: list[TopicSpec], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    wanted = {s.name: s.partitions for s in specs}
    while True:
        described = await admin.describe_topics(list(wanted))
        not_ready = [
            d["topic"]
            for d in described
            if d["error_code"] != 0
            or len(d["partitions"]) < wanted[d["topic"]]
            or any(p["leader"] < 0 for p in d["partitions"])
        ]
        if not not_ready:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics not ready after {timeout_s}s: {sorted(not_ready)}")
        await asyncio.sleep(0.2)


def idempotent_producer(kafka: KafkaConnection | str, client_id: str, linger_ms: int = 2) -> AIOKafkaProducer:
    """acks=all with idempotence: a retried send is written once, in order per partition."""
    return AIOKafkaProducer(
        **connection_of(kafka).client_args(),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
    )


class LagProbe:
    """Consumer lag per partition: the log end offset minus the group's committed offset.

    Uses its own admin client and a group-less consumer (which never joins or commits), both made at
    the first probe and kept, so a scrape costs three requests per group and no rebalance.
    """

    def __init__(self, kafka: KafkaConnection | str, client_id: str) -> None:
        self._kafka = connection_of(kafka)
        self._client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def lag(self, group_id: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        if self._admin is None or self._consumer is None:
            self._admin = AIOKafkaAdminClient(**self._kafka.client_args(), client_id=f"{self._client_id}-lag")
            await self._admin.start()
            self._consumer = AIOKafkaConsumer(
                **self._kafka.client_args(), client_id=f"{self._client_id}-lag", enable_auto_commit=False
            )
            await self._consumer.start()
        described = await self._admin.describe_topics(list(topics))
        partitions = [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if d["error_code"] == 0
            for p in sorted(d["partitions"], key=lambda p: p["partition"])
        ]
        if not partitions:
            return {}
        committed = await self._admin.list_consumer_group_offsets(group_id, partitions=partitions)
        ends = await self._consumer.end_offsets(partitions)
        result = {}
        for tp in partitions:
            done = committed.get(tp)
            # No committed offset yet: everything on the partition is still to be read.
            position = done.offset if done is not None and done.offset >= 0 else 0
            result[(tp.topic, tp.partition)] = max(0, ends[tp] - position)
        return result

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()
        self._admin = self._consumer = None
