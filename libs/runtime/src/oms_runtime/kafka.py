"""Kafka plumbing: topic creation, the idempotent producer and consumer lag."""

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from oms_events.topics import TopicSpec
from oms_runtime.logging import get_logger

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], replication_factor: int = 1, timeout_s: float = 60.0
) -> None:
    """Creates the topics that do not exist yet and waits until every partition has a leader.

    The broker does not auto-create topics. Waiting matters: a consumer that subscribes before its
    topics' metadata is complete gets no partitions of them until its next metadata refresh.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="oms-topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await _create(admin, missing, replication_factor)
        await _wait_until_ready(admin, specs, timeout_s)
    finally:
        await admin.close()


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


def idempotent_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """acks=all with idempotence: a retried send is written once, in order per partition."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
    )


class LagProbe:
    """Consumer lag per partition: the log end offset minus the group's committed offset.

    Uses its own admin client and a group-less consumer (which never joins or commits), both made at
    the first probe and kept, so a scrape costs three requests per group and no rebalance.
    """

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def lag(self, group_id: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        if self._admin is None or self._consumer is None:
            self._admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap_servers, client_id=f"{self._client_id}-lag"
            )
            await self._admin.start()
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers, client_id=f"{self._client_id}-lag", enable_auto_commit=False
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
