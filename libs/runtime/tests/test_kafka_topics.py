"""Topic creation against the real broker: the partition count is a setting, and an existing topic with
fewer partitions than the setting gets more (never fewer)."""

from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from oms_events.topics import ALL_TOPICS, DEFAULT_PARTITIONS, TopicSpec
from oms_runtime.kafka import ensure_topics, with_partitions
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.settings import ServiceSettings
from oms_runtime.testing import free_port

# The broker the environment names, with its security settings (oms_runtime.kafka_connection).
KAFKA = KafkaConnection.from_env()


async def _partition_counts(names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**KAFKA.client_args())
    await admin.start()
    try:
        return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}
    finally:
        await admin.close()


async def _delete(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**KAFKA.client_args())
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


def test_keyed_topics_take_the_setting_and_dead_letter_topics_keep_one_partition() -> None:
    deployed = {s.name: s.partitions for s in with_partitions(ALL_TOPICS, 24)}
    for spec in ALL_TOPICS:
        assert deployed[spec.name] == (24 if spec.name.endswith((".events", ".commands", ".intake")) else 1)
    with pytest.raises(ValueError, match="at least one partition"):
        with_partitions(ALL_TOPICS, 0)


def test_the_setting_defaults_to_twelve_and_reads_kafka_topic_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_PARTITIONS == 12
    assert ServiceSettings().kafka_topic_partitions == 12
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "7")
    assert ServiceSettings().kafka_topic_partitions == 7


async def test_ensure_topics_creates_with_the_setting_then_raises_but_never_lowers_the_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyed = TopicSpec(f"test.partitions.{uuid4().hex[:8]}", DEFAULT_PARTITIONS, 3_600_000, "test")
    single = TopicSpec(f"test.partitions.{uuid4().hex[:8]}.dlq", 1, 3_600_000, "test")
    names = [keyed.name, single.name]
    try:
        monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "2")
        await ensure_topics(KAFKA, [keyed, single])
        assert await _partition_counts(names) == {keyed.name: 2, single.name: 1}

        await ensure_topics(KAFKA, [keyed, single], partitions=5)
        assert await _partition_counts(names) == {keyed.name: 5, single.name: 1}

        # Kafka cannot take partitions away: a lower setting leaves the topic as it is, without an error.
        await ensure_topics(KAFKA, [keyed, single], partitions=3)
        assert await _partition_counts(names) == {keyed.name: 5, single.name: 1}
    finally:
        await _delete(names)


class _StartStoppedError(BaseException):
    """A BaseException: start-up waits out any Exception a step raises (oms_runtime.startup), not this."""


@pytest.mark.parametrize("create", [True, False])
async def test_a_service_creates_topics_at_start_only_when_its_setting_says_so(
    monkeypatch: pytest.MonkeyPatch, create: bool
) -> None:
    """KAFKA_CREATE_TOPICS=false (the Kubernetes manifests) leaves the topics to the Strimzi operator."""
    from oms_runtime import host as host_module

    created: list[str] = []

    async def record(bootstrap: str, specs: list[TopicSpec]) -> None:
        created.extend(s.name for s in specs)

    async def no_schema(*metadata: object) -> None:
        return None

    async def stop_here() -> None:
        raise _StartStoppedError

    monkeypatch.setattr(host_module, "ensure_topics", record)
    host = host_module.ServiceHost(
        "payment-service", ServiceSettings(kafka_create_topics=create, http_port=free_port())
    )
    monkeypatch.setattr(host.db, "create_schema", no_schema)
    monkeypatch.setattr(host.producer, "start", stop_here)
    try:
        with pytest.raises(_StartStoppedError):
            await host.start()
    finally:
        await host.stop()
        await host.db.dispose()
    assert created == ([t.name for t in ALL_TOPICS] if create else [])
