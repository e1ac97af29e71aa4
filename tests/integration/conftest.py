"""Fixtures for the cross-service tests: one running system per test session, on real infrastructure."""

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import leak_scan
from harness import (
    LOG_DIR,
    SERVICES,
    Infra,
    ServiceProcess,
    System,
    free_port,
    recreate_database,
    service_env,
)
from inventory_service.entrypoints.consumers import AVAILABILITY_GROUP
from inventory_service.entrypoints.sales_consumer import DEMAND_GROUP
from notification_service.testing import LocalSmsProvider
from oms_events.routes import WEBHOOKS_GROUP
from oms_events.topics import ALL_TOPICS
from oms_runtime.kafka import ensure_topics
from order_service.entrypoints.consumers import INTAKE_GROUP
from otlp_receiver import OtlpReceiver

TEST_DATABASE = "oms_integration"
SMS_WEBHOOK_TOKEN = "it-sms-webhook-token-0123456789"


class MailCollector:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


async def _check_infra(infra: Infra) -> None:
    problems = []
    admin = AIOKafkaAdminClient(**infra.kafka.client_args(), request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await admin.list_topics()
    except Exception as exc:
        problems.append(f"Kafka at {infra.kafka.bootstrap_servers}: {exc!r}")
    finally:
        await admin.close()
    engine = create_async_engine(infra.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"PostgreSQL: {exc!r}")
    finally:
        await engine.dispose()
    client = redis.Redis.from_url(infra.redis_url)
    try:
        await client.ping()
    except Exception as exc:
        problems.append(f"Redis at {infra.redis_url}: {exc!r}")
    finally:
        await client.aclose()
    if problems:
        pytest.fail(
            "integration tests need the real infrastructure (`make infra` or deploy/local/infra.sh start): "
            + "; ".join(problems),
            pytrace=False,
        )


async def _skip_earlier_messages(infra: Infra) -> None:
    """The test database starts empty, so the services' consumer groups must start at the end of
    every topic: messages left by earlier runs (or by `make run`) belong to another database."""
    await ensure_topics(infra.kafka, ALL_TOPICS)
    admin = AIOKafkaAdminClient(**infra.kafka.client_args())
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in ALL_TOPICS])
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    for group in (*SERVICES, INTAKE_GROUP, DEMAND_GROUP, AVAILABILITY_GROUP, WEBHOOKS_GROUP):
        consumer = AIOKafkaConsumer(**infra.kafka.client_args(), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.commit({tp: offset for tp, offset in ends.items()})
        finally:
            await consumer.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `runs_last` (the API fuzzing, which leaves random orders and warehouses behind) run
    after every other test of the session."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


async def _forget_earlier_idempotency_keys(infra: Infra) -> None:
    """Idempotency keys in Redis name orders of an earlier run's database: a retried request (the API
    fuzzing sends the same ones every run) would be answered with an order that no longer exists."""
    client = redis.Redis.from_url(infra.redis_url)
    try:
        async for key in client.scan_iter(match="oms:order-service:idempotency:*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(scope="session", autouse=True)
async def no_sensitive_data_leaked() -> AsyncIterator[None]:
    """After every other test and fixture of the session (set up first, so torn down last): no payment
    token, card number or misplaced customer contact on any topic the session wrote to, or in the lines the
    services logged (tests/integration/leak_scan.py says what is allowed where, and why)."""
    kafka = Infra.from_env().kafka
    try:
        await asyncio.wait_for(ensure_topics(kafka, ALL_TOPICS), 30)
        topic_start = await asyncio.wait_for(leak_scan.end_offsets(kafka), 30)
    except Exception:  # the system fixture reports the unreachable infrastructure, with the reason
        yield
        return
    log_start = leak_scan.log_sizes(LOG_DIR)
    yield
    scan = leak_scan.Scan()
    records = await leak_scan.records_since(kafka, topic_start)
    for _, value, _ in records:
        leak_scan.learn_phones(scan, value)
    for where, value, headers in records:
        leak_scan.scan_record(scan, where, value, headers)
    lines = leak_scan.scan_logs(scan, LOG_DIR, log_start)
    if scan.findings:
        shown = "\n".join(f"  {finding}" for finding in scan.findings[:50])
        more = f"\n  ... and {len(scan.findings) - 50} more" if len(scan.findings) > 50 else ""
        pytest.fail(
            f"sensitive data on topics or in logs ({len(records)} records, {lines} log lines scanned):\n{shown}{more}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def sms_provider() -> Iterator[LocalSmsProvider]:
    """The SMS provider notification-service sends to (a real HTTP server); `.messages` is what arrived."""
    with LocalSmsProvider() as provider:
        yield provider


@pytest.fixture(scope="session")
def sms_webhook_token() -> str:
    """What the SMS provider's delivery reports to notification-service carry (SMS_WEBHOOK_TOKEN)."""
    return SMS_WEBHOOK_TOKEN


@pytest.fixture(scope="session")
async def system(sms_provider: LocalSmsProvider) -> AsyncIterator[System]:
    base = Infra.from_env()
    await _check_infra(base)
    await recreate_database(base, TEST_DATABASE)
    await _skip_earlier_messages(base)
    await _forget_earlier_idempotency_keys(base)
    infra = base.with_database(TEST_DATABASE)

    traces = OtlpReceiver()
    traces.start()
    mail = MailCollector()
    smtp_port = free_port()
    smtp = Controller(mail, hostname="127.0.0.1", port=smtp_port)
    smtp.start()

    env = service_env(
        infra,
        smtp_port=smtp_port,
        sms_provider_url=sms_provider.url,
        sms_webhook_token=SMS_WEBHOOK_TOKEN,
        otlp_endpoint=traces.endpoint,
    )
    # Every service may serve HTTP (its API, health and metrics): each gets a port of its own.
    ports = {name: free_port() for name in SERVICES}
    services = {
        name: ServiceProcess(name, module, {**env, "HTTP_PORT": str(ports[name])}) for name, module in SERVICES.items()
    }
    engine = create_async_engine(infra.database_url)
    try:
        for service in services.values():
            service.start()
        await asyncio.gather(*(s.wait_started() for s in services.values()))
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        yield System(infra, urls, services, engine, mail.messages, traces)
    finally:
        codes = {name: s.stop() for name, s in services.items()}
        smtp.stop()
        traces.stop()
        await engine.dispose()
    unclean = {name: code for name, code in codes.items() if code not in (0, None)}
    assert not unclean, f"services did not shut down cleanly on SIGTERM: {unclean}"
