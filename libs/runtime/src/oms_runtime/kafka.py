"""Kafka plumbing: topic creation and the idempotent producer."""

from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from oms_events.topics import TopicSpec
from oms_runtime.logging import get_logger

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], replication_factor: int = 1) -> None:
    """Creates the topics that do not exist yet. The broker does not auto-create topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="oms-topic-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return
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
    finally:
        await admin.close()


def idempotent_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """acks=all with idempotence: a retried send is written once, in order per partition."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
    )
