"""The dead-letter API on the real Kafka and PostgreSQL: listed with reasons, redriven to the source
topic once, discarded with a reason, ops keys only; the same ledger as `oms dlq`."""

import os
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from oms_events.topics import TopicSpec
from oms_runtime import dead_letters, kafka_io
from oms_runtime.dead_letter_api import dead_letter_router
from oms_runtime.http_api import ApiKeyAuthenticator, ApiKeyConfig, ServiceApi
from oms_runtime.kafka import ensure_topics
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.messaging import DeadLetterPublisher, SourceRecord

# The broker the environment names, with its security settings (oms_runtime.kafka_connection).
KAFKA = KafkaConnection.from_env()
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")
OPS = "dead-letter-api-ops-key-0123456789"
CHANNEL = "dead-letter-api-web-key-0123456789"

pytestmark = pytest.mark.integration


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, str, str, str]]:
    run = uuid4().hex[:10]
    source, dead, schema = f"dla-test.{run}.commands", f"dla-test.{run}.dlq", f"test_oms_ops_{run}"
    await ensure_topics(KAFKA, [TopicSpec(source, 1, 3_600_000, "test"), TopicSpec(dead, 1, 3_600_000, "test")])
    auth = ApiKeyAuthenticator(
        [
            ApiKeyConfig.model_validate({"name": "ops-ana", "key": OPS, "role": "ops"}),
            ApiKeyConfig.model_validate({"name": "web", "key": CHANNEL, "role": "channel", "channel": "web"}),
        ]
    )
    app = ServiceApi()
    router, close = dead_letter_router(dead, KAFKA, DATABASE_URL, auth, ledger_schema=schema)
    app.include_router(router)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    try:
        yield client, source, dead, schema
    finally:
        await client.aclose()
        await close()
        admin = AIOKafkaAdminClient(**KAFKA.client_args())
        await admin.start()
        try:
            await admin.delete_topics([source, dead])
        finally:
            await admin.close()
        engine = create_async_engine(DATABASE_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def _dead_letter(dead: str, source: str, key: str, value: bytes, reason: str) -> None:
    producer = AIOKafkaProducer(**KAFKA.client_args(), enable_idempotence=True)
    await producer.start()
    try:
        publisher = DeadLetterPublisher(producer, dead, consumer="payment-service")
        await publisher.send(SourceRecord(source, 0, 41, key.encode(), value, (("type", b"CapturePayment"),)), reason)
    finally:
        await producer.stop()


def _ops(body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"headers": {"X-API-Key": OPS}, **({"json": body} if body is not None else {})}


async def test_a_dead_letter_is_listed_redriven_once_and_recorded(
    setup: tuple[httpx.AsyncClient, str, str, str],
) -> None:
    client, source, dead, schema = setup
    key = str(uuid4())
    await _dead_letter(dead, source, key, b'{"not": "an envelope"}', "invalid envelope: no type")

    assert (await client.get("/ops/dead-letters")).status_code == 401
    assert (await client.get("/ops/dead-letters", headers={"X-API-Key": CHANNEL})).status_code == 403
    listed = (await client.get("/ops/dead-letters", **_ops())).json()
    assert (listed["topic"], listed["total"], listed["pending"]) == (dead, 1, 1)
    [letter] = listed["dead_letters"]
    assert letter["reason"] == "invalid envelope: no type"
    assert (letter["key"], letter["message_type"], letter["status"]) == (key, "CapturePayment", "pending")
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (source, 0, 41)
    assert letter["value_preview"] == '{"not": "an envelope"}'

    ref = f"/ops/dead-letters/{letter['partition']}/{letter['offset']}"
    assert (await client.post(f"{ref}/redrive", **_ops({"operator": "ana"}))).status_code == 422
    redriven = await client.post(f"{ref}/redrive", **_ops({"operator": "ana", "reason": "bug fixed"}))
    assert redriven.status_code == 200, redriven.text
    assert redriven.json()["republished_to"] == source
    records = await kafka_io.read(KAFKA, await kafka_io.partitions_of(KAFKA, [source]))
    assert [(r.key, r.value) for r in records] == [(key.encode(), b'{"not": "an envelope"}')]
    again = await client.post(f"{ref}/redrive", **_ops({"operator": "ana", "reason": "again"}))
    assert again.status_code == 409
    assert "already redriven" in again.json()["message"]
    assert len(await kafka_io.read(KAFKA, await kafka_io.partitions_of(KAFKA, [source]))) == 1

    # The CLI's ledger sees what the API did.
    async with dead_letters.Ledger(DATABASE_URL, schema) as ledger:
        [action] = (await ledger.actions(dead))[(0, letter["offset"])]
    assert (action["action"], action["operator"], action["reason"]) == ("redriven", "ana", "bug fixed")

    discard = await client.post(f"{ref}/discard", **_ops({"operator": "ana", "reason": "x"}))
    assert discard.status_code == 409
    forced = await client.post(f"{ref}/discard", **_ops({"operator": "ana", "reason": "done", "force": True}))
    assert forced.status_code == 200
    shown = (await client.get("/ops/dead-letters", params={"status": "discarded"}, **_ops())).json()
    assert [a["action"] for a in shown["dead_letters"][0]["actions"]] == ["redriven", "discarded"]
    assert (await client.get("/ops/dead-letters", params={"status": "pending"}, **_ops())).json()["dead_letters"] == []
    assert (
        await client.post("/ops/dead-letters/0/999/discard", **_ops({"operator": "a", "reason": "b"}))
    ).status_code == 404


async def test_a_payment_token_never_reaches_the_dead_letter_topic_and_such_a_letter_is_not_redriven(
    setup: tuple[httpx.AsyncClient, str, str, str],
) -> None:
    client, source, dead, _ = setup
    key = str(uuid4())
    value = b'{"type": "CapturePayment", "payload": {"order_id": "x", "payment_token": "tok_secret_42"}'
    await _dead_letter(dead, source, key, value, "invalid envelope: truncated")

    [record] = await kafka_io.read(KAFKA, await kafka_io.partitions_of(KAFKA, [dead]))
    assert b"tok_secret_42" not in record.value
    assert b'"payment_token":"[redacted]"' in record.value
    assert record.header("dlq.redacted") == "payment_token"

    [letter] = (await client.get("/ops/dead-letters", **_ops())).json()["dead_letters"]
    ref = f"/ops/dead-letters/{letter['partition']}/{letter['offset']}"
    refused = await client.post(f"{ref}/redrive", **_ops({"operator": "ana", "reason": "try"}))
    assert refused.status_code == 409
    assert "payment token redacted" in refused.json()["message"]
    assert await kafka_io.read(KAFKA, await kafka_io.partitions_of(KAFKA, [source])) == []
