"""Event store, inbox and outbox relay on the real PostgreSQL and Kafka."""

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from oms_events import Envelope, default_registry
from oms_events.messages import ReleaseStock
from oms_runtime.db import Database
from oms_runtime.eventstore import ConcurrencyError, EventStore
from oms_runtime.inbox import Inbox
from oms_runtime.kafka import idempotent_producer
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.outbox import Outbox
from oms_runtime.relay import OutboxRelay

# The broker the environment names, with its security settings (oms_runtime.kafka_connection).
KAFKA = KafkaConnection.from_env()
registry = default_registry()


def _envelope(order_id: UUID | None = None, reason: str = "test") -> Envelope:
    return registry.wrap(ReleaseStock(order_id=order_id or uuid4(), reason=reason), producer="test")


async def test_append_and_load_a_stream(db: Database) -> None:
    store = EventStore()
    first, second = _envelope(), _envelope()
    async with db.transaction() as session:
        assert await store.append(session, "s-1", "test", 0, [first, second]) == 2
    async with db.transaction() as session:
        loaded = await store.load(session, "s-1")
        assert [e.envelope for e in loaded] == [first, second]
        assert [e.version for e in loaded] == [1, 2]
        assert await store.current_version(session, "s-1") == 2
        assert await store.current_version(session, "none") == 0


async def test_concurrent_appends_at_the_same_version_let_exactly_one_win(db: Database) -> None:
    store = EventStore()

    async def append(i: int) -> str:
        try:
            async with db.transaction() as session:
                await store.append(session, "contended", "test", 0, [_envelope(reason=str(i))])
                await asyncio.sleep(0.05)
            return "won"
        except ConcurrencyError:
            return "lost"

    results = await asyncio.gather(*(append(i) for i in range(8)))
    assert sorted(results) == ["lost"] * 7 + ["won"]
    async with db.transaction() as session:
        assert len(await store.load(session, "contended")) == 1


async def test_inbox_admits_a_message_once_per_consumer(db: Database) -> None:
    inbox = Inbox()
    envelope = _envelope()
    async with db.transaction() as session:
        assert await inbox.record(session, "a", envelope)
        assert not await inbox.record(session, "a", envelope)
        assert await inbox.record(session, "b", envelope)


async def test_inbox_record_rolls_back_with_the_failed_transaction(db: Database) -> None:
    inbox = Inbox()
    envelope = _envelope()
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await inbox.record(session, "a", envelope)
            raise RuntimeError("handler failed")
    async with db.transaction() as session:
        assert await inbox.record(session, "a", envelope)


async def test_relay_publishes_committed_rows_in_order_and_never_the_rolled_back(db: Database) -> None:
    topic = f"test.outbox.{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**KAFKA.client_args())
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    await admin.close()

    outbox = Outbox()
    order_id = uuid4()
    committed = [_envelope(order_id, reason=f"r{i}") for i in range(50)]
    for envelope in committed[:25]:
        async with db.transaction() as session:
            await outbox.add(session, topic, str(order_id), envelope)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await outbox.add(session, topic, str(order_id), _envelope(order_id, reason="rolled back"))
            raise RuntimeError("state change failed")
    async with db.transaction() as session:
        for envelope in committed[25:]:
            await outbox.add(session, topic, str(order_id), envelope)

    producer = idempotent_producer(KAFKA, "test-relay")
    await producer.start()
    relay = OutboxRelay(db, producer, batch_size=20)
    try:
        while await relay.publish_batch():
            pass
    finally:
        await producer.stop()
    assert relay.published_total == 50
    async with db.transaction() as session:
        assert await session.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 0

    consumer = AIOKafkaConsumer(**KAFKA.client_args(), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records: list[Any] = []
        while len(records) < 50:
            batch = await consumer.getmany(tp, timeout_ms=5000)
            assert batch, f"only {len(records)} records arrived"
            records.extend(batch[tp])
    finally:
        await consumer.stop()
    assert [json.loads(r.value)["event_id"] for r in records] == [str(e.event_id) for e in committed]
    assert {r.key for r in records} == {str(order_id).encode()}
    assert dict(records[0].headers)["type"] == b"ReleaseStock"


async def test_a_failing_statement_s_parameters_stay_out_of_its_error(db: Database) -> None:
    """Errors end up in logs and dead letters: a payment token passed to a statement must not.

    (The server's message here names no value; SQLAlchemy would add the parameters to it.)"""
    with pytest.raises(DBAPIError) as failure:
        async with db.transaction() as session:
            await session.execute(text("SELECT CAST(:token AS text), 1 / 0"), {"token": "tok_secret_4242"})
    assert "tok_secret_4242" not in str(failure.value)
    assert "hidden due to hide_parameters" in str(failure.value)
