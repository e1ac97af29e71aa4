"""The `oms` CLI: dead letters and an order's story against the real broker and database; the API calls
against a mocked order-service."""

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from oms_cli import api, main
from oms_events import default_registry
from oms_events.messages import ReleaseStock, ReserveStock
from oms_events.topics import TopicSpec
from oms_events.values import StockLine
from oms_runtime import kafka_io
from oms_runtime.kafka import ensure_topics
from oms_runtime.kafka_connection import KafkaConnection
from oms_runtime.messaging import DeadLetterPublisher, SourceRecord

# The broker the environment names, with its security settings (oms_runtime.kafka_connection).
KAFKA = KafkaConnection.from_env()
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")
runner = CliRunner()
registry = default_registry()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tables fold long cells at 80 columns; the assertions read whole ids and reasons.
    monkeypatch.setattr(main, "console", Console(width=400))
    monkeypatch.setattr(main, "err", Console(width=400, stderr=True))


@pytest.fixture
def topics() -> Iterator[tuple[str, str]]:
    """A source topic and a dead-letter topic of this test only, and a ledger schema of its own."""
    run = uuid4().hex[:10]
    source, dead = f"oms-cli-test.{run}.commands", f"oms-cli-test.{run}.dlq"
    asyncio.run(ensure_topics(KAFKA, [TopicSpec(source, 2, 3_600_000, "test"), TopicSpec(dead, 1, 3_600_000, "test")]))
    schema = f"test_oms_ops_{run}"
    previous = os.environ.get("OMS_OPS_SCHEMA")
    os.environ["OMS_OPS_SCHEMA"] = schema
    try:
        yield source, dead
    finally:
        if previous is None:
            os.environ.pop("OMS_OPS_SCHEMA", None)
        else:
            os.environ["OMS_OPS_SCHEMA"] = previous
        asyncio.run(_cleanup([source, dead], schema))


async def _cleanup(names: list[str], schema: str) -> None:
    admin = AIOKafkaAdminClient(**KAFKA.client_args())
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()
    engine = create_async_engine(DATABASE_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


async def _dead_letter(dead: str, records: list[tuple[SourceRecord, str]]) -> None:
    """Dead-letters records exactly as a service's consumer does."""
    producer = AIOKafkaProducer(**KAFKA.client_args(), enable_idempotence=True)
    await producer.start()
    try:
        publisher = DeadLetterPublisher(producer, dead, consumer="inventory-service")
        for record, reason in records:
            await publisher.send(record, reason)
    finally:
        await producer.stop()


def _command(order_id: Any, n: int) -> bytes:
    return registry.wrap(ReleaseStock(order_id=order_id, reason=f"step {n}"), producer="order-service").to_bytes()


def _read(topic: str, key: str | None = None) -> list[kafka_io.Record]:
    async def read() -> list[kafka_io.Record]:
        return await kafka_io.read(KAFKA, await kafka_io.partitions_of(KAFKA, [topic]), key=key)

    return asyncio.run(read())


def test_dead_letters_are_listed_with_reasons_redriven_in_order_and_discarded_with_a_reason(
    topics: tuple[str, str],
) -> None:
    source, dead = topics
    order_a, order_b = uuid4(), uuid4()
    values = [_command(order_a, n) for n in range(3)]
    asyncio.run(
        _dead_letter(
            dead,
            [
                (
                    SourceRecord(source, 1, 40 + n, str(order_a).encode(), value, (("type", b"ReleaseStock"),)),
                    f"bug {n}",
                )
                for n, value in enumerate(values)
            ]
            + [(SourceRecord(source, 0, 7, str(order_b).encode(), b"{broken", ()), "invalid envelope: bad JSON")],
        )
    )

    listed = runner.invoke(main.app, ["dlq", "list", dead])
    assert listed.exit_code == 0, listed.output
    for reason in ("bug 0", "bug 1", "bug 2", "invalid envelope: bad JSON"):
        assert reason in listed.output
    assert listed.output.count("pending") == 4
    assert f"{source}:1:41" in listed.output, "where each came from"

    shown = runner.invoke(main.app, ["dlq", "show", dead, "0:3"])
    assert shown.exit_code == 0, shown.output
    assert "invalid envelope: bad JSON" in shown.output
    assert f"{source} partition 0 offset 7" in shown.output

    redriven = runner.invoke(main.app, ["dlq", "redrive", dead, "--order", str(order_a), "--operator", "alice"])
    assert redriven.exit_code == 0, redriven.output
    republished = _read(source, str(order_a))
    assert [r.value for r in republished] == values, "all of the order's messages, in their original order"
    assert len({r.partition for r in republished}) == 1, "same key, same partition"
    headers = dict(republished[0].headers)
    assert "dlq.reason" not in headers
    assert headers["type"] == b"ReleaseStock"
    assert headers["dlq.redriven_by"] == b"alice"
    assert headers["dlq.redriven_from"] == f"{dead}:0:0".encode()

    again = runner.invoke(main.app, ["dlq", "redrive", dead, "--order", str(order_a)])
    assert again.exit_code == 0
    assert again.output.count("skipped") == 3
    assert len(_read(source, str(order_a))) == 3, "a redriven letter is not sent twice by accident"

    no_reason = runner.invoke(main.app, ["dlq", "discard", dead, "3"])
    assert no_reason.exit_code != 0, "a discard needs a reason"
    discarded = runner.invoke(
        main.app, ["dlq", "discard", dead, "3", "--reason", "garbage from a test client", "--operator", "bob"]
    )
    assert discarded.exit_code == 0, discarded.output
    twice = runner.invoke(main.app, ["dlq", "discard", dead, "3", "--reason", "again"])
    assert twice.exit_code == 1
    assert "already discarded" in twice.output

    after = runner.invoke(main.app, ["dlq", "list", dead])
    assert after.output.count("redriven") == 3
    assert after.output.count("discarded") == 1
    assert "pending" not in after.output
    assert runner.invoke(main.app, ["dlq", "list", dead, "--pending"]).output.strip() == "no dead letters"
    record = runner.invoke(main.app, ["dlq", "show", dead, "3"]).output
    assert "discarded by bob: garbage from a test client" in record
    assert _read(source, str(order_b)) == [], "a discarded letter is never republished"


def test_one_dead_letter_is_redriven_by_its_offset(topics: tuple[str, str]) -> None:
    source, dead = topics
    order = uuid4()
    values = [_command(order, n) for n in range(2)]
    asyncio.run(
        _dead_letter(
            dead, [(SourceRecord(source, 0, n, str(order).encode(), v, ()), "timeout") for n, v in enumerate(values)]
        )
    )
    result = runner.invoke(main.app, ["dlq", "redrive", dead, "1"])
    assert result.exit_code == 0, result.output
    assert [r.value for r in _read(source)] == [values[1]]
    assert runner.invoke(main.app, ["dlq", "redrive", dead]).exit_code == 2, "one letter or one order, not none"
    assert runner.invoke(main.app, ["dlq", "show", dead, "9"]).exit_code == 1


def test_an_orders_story_spans_topics_in_time_order_with_dead_letters_and_masked_data(
    topics: tuple[str, str],
) -> None:
    source, dead = topics
    order = uuid4()
    first = registry.wrap(
        ReserveStock(order_id=order, lines=[StockLine(sku="SKU-1", quantity=2)]), producer="order-service"
    )
    second = registry.wrap(ReleaseStock(order_id=order, reason="mail jane.doe@example.com"), producer="x")

    async def publish() -> None:
        async with kafka_io.Publisher(KAFKA) as publisher:
            await publisher.send(source, str(order).encode(), first.to_bytes(), [])
            await publisher.send(source, str(uuid4()).encode(), first.to_bytes(), [])  # another order
        await _dead_letter(dead, [(SourceRecord(source, 0, 1, str(order).encode(), second.to_bytes(), ()), "boom")])

    asyncio.run(publish())
    result = runner.invoke(main.app, ["orders", "story", str(order), "--topic", source, "--topic", dead])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2 messages" in out
    assert out.index("ReserveStock") < out.index("ReleaseStock")
    assert "DEAD LETTER: boom" in out
    assert "jane.doe@example.com" not in out
    missing = runner.invoke(main.app, ["orders", "story", str(uuid4()), "--topic", source])
    assert missing.exit_code == 1


def _mock(handler: Any, monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = handler(request)
        return response

    monkeypatch.setattr(api, "transport", httpx.MockTransport(record))
    monkeypatch.setenv("OMS_API_KEY", "ops-key-for-tests")
    return seen


def test_stuck_orders_come_from_the_api_with_the_ops_key(monkeypatch: pytest.MonkeyPatch) -> None:
    order_id = str(uuid4())
    body = {
        "as_of": "2026-01-01T00:00:00Z",
        "older_than_s": 600,
        "orders": [
            {
                "order_id": order_id,
                "channel": "web",
                "external_reference": "EXT-1",
                "customer_id": "c-1",
                "status": "needs_attention",
                "placed_at": "2026-01-01T00:00:00Z",
                "last_event_at": "2026-01-01T00:00:00Z",
                "last_event_type": "OrderNeedsAttention",
                "stuck_for_s": 3725,
                "reason": "needs_attention",
            }
        ],
    }
    seen = _mock(lambda request: httpx.Response(200, json=body), monkeypatch)
    result = runner.invoke(main.app, ["orders", "stuck", "--older-than", "600"])
    assert result.exit_code == 0, result.output
    assert order_id in result.output
    assert "1h02m" in result.output
    [request] = seen
    assert request.url.path == "/orders/stuck"
    assert request.url.params["older_than_s"] == "600.0"
    assert request.headers["X-API-Key"] == "ops-key-for-tests"


def test_an_api_refusal_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock(lambda _: httpx.Response(403, json={"error": "forbidden", "message": "ops only"}), monkeypatch)
    result = runner.invoke(main.app, ["orders", "stuck"])
    assert result.exit_code == 1
    assert "HTTP 403 forbidden: ops only" in result.output
    monkeypatch.delenv("OMS_API_KEY")
    assert runner.invoke(main.app, ["orders", "stuck"]).exit_code == 2


def test_demo_orders_are_placed_and_followed_to_a_final_status(monkeypatch: pytest.MonkeyPatch) -> None:
    placed: dict[str, dict[str, Any]] = {}

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = json.loads(request.content)
            order_id = str(uuid4())
            placed[order_id] = body
            return httpx.Response(201, json={"order_id": order_id})
        order_id = request.url.path.rsplit("/", 1)[-1]
        token = placed[order_id]["payment_token"]
        return httpx.Response(200, json={"status": "rejected" if "decline" in token else "shipped"})

    seen = _mock(api, monkeypatch)
    result = runner.invoke(main.app, ["demo", "load", "--count", "7"])
    assert result.exit_code == 0, result.output
    assert len(placed) == 7
    assert len({b["external_reference"] for b in placed.values()}) == 7
    assert {b["channel"] for b in placed.values()} >= {"web", "marketplace", "phone", "store"}
    assert "rejected" in result.output
    assert all(r.headers.get("Idempotency-Key") for r in seen if r.method == "POST")


def test_an_unknown_projection_is_refused() -> None:
    result = runner.invoke(main.app, ["projection", "rebuild", "no-such-view"])
    assert result.exit_code == 2
    assert "order-summaries" in result.output
