"""The integration harness: real Kafka, PostgreSQL and Redis, and the five services as processes."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from oms_runtime.kafka_connection import KafkaClientSettings, KafkaConnection

REPO = Path(__file__).resolve().parents[2]

OPS_KEY = "it-ops-key-0123456789abcdef"
CHANNEL_KEYS = {c: f"it-{c}-key-0123456789abcdef" for c in ("web", "marketplace", "phone", "store")}
WAREHOUSE_KEY = "it-warehouse-key-0123456789abcdef"
# The reports' test works this warehouse by hand; its key acts for that warehouse only.
REPORT_WAREHOUSE = "WH-IT-REPORTS"
REPORT_WAREHOUSE_KEY = "it-report-warehouse-key-0123456789abcdef"
CARRIER_KEY = "it-carrier-key-0123456789abcdef"
API_KEYS = json.dumps(
    [
        {"name": "it-ops", "key": OPS_KEY, "role": "ops"},
        {"name": "it-warehouse", "key": WAREHOUSE_KEY, "role": "warehouse"},
        {
            "name": "it-report-warehouse",
            "key": REPORT_WAREHOUSE_KEY,
            "role": "warehouse",
            "warehouse_id": REPORT_WAREHOUSE,
        },
        {"name": "it-carrier", "key": CARRIER_KEY, "role": "carrier"},
    ]
    + [{"name": f"it-{c}", "key": k, "role": "channel", "channel": c} for c, k in CHANNEL_KEYS.items()]
)
# Warehouses worked by hand through fulfilment-service's API (every other warehouse ships at once).
MANUAL_WAREHOUSES = ("WH-IT-MANUAL-A", "WH-IT-MANUAL-B")
SETTLED = frozenset({"shipped", "rejected", "cancelled", "needs_attention"})
"""An order's statuses that no reply moves on from (needs_attention waits for an operator)."""
LOG_DIR = REPO / ".local" / "test-logs"

SERVICES = {
    "order-service": "order_service.main",
    "inventory-service": "inventory_service.main",
    "payment-service": "payment_service.main",
    "fulfilment-service": "fulfilment_service.main",
    "notification-service": "notification_service.main",
}

T = TypeVar("T")


KAFKA_CLIENT_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
    "KAFKA_SSL_KEY_PASSWORD",
)
"""The settings of oms_runtime.kafka_connection: what the services are given to reach the broker."""


@dataclass(frozen=True)
class Infra:
    kafka_env: dict[str, str]
    """The Kafka client settings (KAFKA_CLIENT_ENV) the services get; `kafka` is the tests' own connection."""
    database_url: str
    redis_url: str

    @property
    def kafka(self) -> KafkaConnection:
        return KafkaClientSettings.model_validate(
            {name.lower(): value for name, value in self.kafka_env.items()}
        ).kafka_connection()

    def librdkafka_config(self) -> dict[str, str]:
        """The same connection for a librdkafka client (confluent-kafka), which names the settings its own way."""
        names = {
            "KAFKA_BOOTSTRAP_SERVERS": "bootstrap.servers",
            "KAFKA_SECURITY_PROTOCOL": "security.protocol",
            "KAFKA_SASL_MECHANISM": "sasl.mechanism",
            "KAFKA_SASL_USERNAME": "sasl.username",
            "KAFKA_SASL_PASSWORD": "sasl.password",
            "KAFKA_SSL_CAFILE": "ssl.ca.location",
            "KAFKA_SSL_CERTFILE": "ssl.certificate.location",
            "KAFKA_SSL_KEYFILE": "ssl.key.location",
            "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
        }
        config = {names[name]: value for name, value in self.kafka_env.items()}
        if config.get("security.protocol", "PLAINTEXT").startswith("SASL_"):
            config.setdefault("sasl.mechanism", "SCRAM-SHA-512")
        return config

    @classmethod
    def from_env(cls) -> "Infra":
        kafka_env = {name: os.environ[name] for name in KAFKA_CLIENT_ENV if os.environ.get(name)}
        kafka_env.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        return cls(
            kafka_env=kafka_env,
            database_url=os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms"),
            redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        )

    def with_database(self, name: str) -> "Infra":
        url = make_url(self.database_url).set(database=name)
        return Infra(self.kafka_env, url.render_as_string(hide_password=False), self.redis_url)


def service_env(
    infra: Infra,
    *,
    smtp_port: int,
    sms_provider_url: str,
    sms_webhook_token: str,
    otlp_endpoint: str | None = None,
) -> dict[str, str]:
    """What every service of a test system is started with (each also gets an HTTP_PORT of its own)."""
    env = {
        **infra.kafka_env,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMS_PROVIDER_URL": sms_provider_url,
        "SMS_WEBHOOK_TOKEN": sms_webhook_token,
        "CONSUMER_MAX_ATTEMPTS": "3",
        "CONSUMER_RETRY_BACKOFF_S": "0.1",
        # No test waits for a re-send; a shorter timeout made the tests that stop a service re-send (and
        # count doubled replies) whenever the restart took longer on a busy machine.
        "SAGA_STEP_TIMEOUT_S": "120",
        # Far above the other tests' totals: only test_order_holds.py places orders that big.
        "HOLD_ABOVE_MINOR": "1000000",
        # payment-service's risk check: only test_payments.py pays in GBP (its amount decline).
        "RISK_DECLINE_ABOVE_MINOR": '{"GBP": 100000}',
        "API_KEYS": API_KEYS,
        "TRACKING_TOKEN_SECRET": "integration-tracking-secret-0123456789",
        "WAREHOUSE_MODES": json.dumps(dict.fromkeys((*MANUAL_WAREHOUSES, REPORT_WAREHOUSE), "manual")),
        "OTEL_TRACES_EXPORTER": "none",
        # Webhooks to receivers in the test process (on 127.0.0.1), retried and disabled within seconds
        # (test_webhooks.py); a lease of seconds, so a killed sender's attempts are made again soon.
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOK_RETRY_BASE_S": "0.2",
        "WEBHOOK_RETRY_MAX_S": "1",
        "WEBHOOK_DISABLE_AFTER_S": "4",
        "WEBHOOK_LEASE_S": "5",
        "WEBHOOK_POLL_INTERVAL_S": "0.2",
        "WEBHOOK_SUBSCRIPTION_REFRESH_S": "1",
    }
    if otlp_endpoint is not None:
        # Spans go to a receiver in the test process, exported within a fraction of a second.
        env |= {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def recreate_database(infra: Infra, name: str) -> None:
    admin = create_async_engine(infra.database_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], timeout_s: float = 30.0, every_s: float = 0.2
) -> T:
    """Polls until the condition holds; fails with the last value seen."""
    deadline = time.monotonic() + timeout_s
    value = await probe()
    while not until(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value: {value!r}")
        await asyncio.sleep(every_s)
        value = await probe()
    return value


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _started_before: int = 0

    @property
    def log_path(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self._started_before = self._started_count() if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def _started_count(self) -> int:
        return self.log_path.read_text(errors="replace").count('"message": "service started"')

    async def wait_started(self, timeout_s: float = 180.0) -> None:
        # Generous: five services importing at once on a busy 2-core machine took over a minute.
        deadline = time.monotonic() + timeout_s
        while self._started_count() <= self._started_before:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start; see {self.log_path}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start in {timeout_s}s:\n{self.tail()}")
            await asyncio.sleep(0.2)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, no commit."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@dataclass
class System:
    infra: Infra
    http_urls: dict[str, str]
    services: dict[str, ServiceProcess]
    engine: AsyncEngine
    mailbox: list[Any] = field(default_factory=list)
    traces: Any = None
    """The OTLP receiver the services export their spans to (otlp_receiver.OtlpReceiver)."""

    @property
    def http_url(self) -> str:
        return self.http_urls["order-service"]

    def http(self, key: str | None = OPS_KEY, service: str = "order-service") -> httpx.AsyncClient:
        """A client of one service's API (order-service unless told otherwise), with the ops key unless told
        otherwise (None: no key)."""
        headers = {"X-API-Key": key} if key else {}
        return httpx.AsyncClient(base_url=self.http_urls[service], timeout=30.0, headers=headers)

    # ------------------------------------------------------------- orders

    async def place_order(
        self,
        lines: Iterable[tuple[str, int, int]],
        *,
        token: str = "tok_approve",
        channel: str = "web",
        reference: str | None = None,
        email: str = "jane.doe@example.com",
        idempotency_key: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        body = order_body(lines, token=token, channel=channel, reference=reference, email=email)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if client is not None:
            return await client.post("/orders", json=body, headers=headers)
        async with self.http() as http:
            return await http.post("/orders", json=body, headers=headers)

    async def order(self, order_id: UUID | str, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
        if client is not None:
            response = await client.get(f"/orders/{order_id}")
        else:
            async with self.http() as http:
                response = await http.get(f"/orders/{order_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def wait_for_status(
        self, order_id: UUID | str, statuses: Iterable[str], timeout_s: float = 60.0
    ) -> dict[str, Any]:
        wanted = set(statuses)
        async with self.http() as http:
            return await eventually(
                lambda: self.order(order_id, http), lambda o: o["status"] in wanted, timeout_s=timeout_s, every_s=0.25
            )

    # ------------------------------------------------------------- stock

    async def set_stock(self, sku: str, levels: dict[str, int]) -> None:
        async with self.engine.begin() as conn:
            for warehouse, on_hand in levels.items():
                await conn.execute(
                    text(
                        "INSERT INTO inventory_service.stock_levels (sku, warehouse_id, on_hand, reserved) "
                        "VALUES (:sku, :wh, :on_hand, 0) ON CONFLICT (sku, warehouse_id) "
                        "DO UPDATE SET on_hand = :on_hand, reserved = 0"
                    ),
                    {"sku": sku, "wh": warehouse, "on_hand": on_hand},
                )

    async def add_warehouse(self, warehouse_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO inventory_service.warehouses (warehouse_id, name, location) "
                    "VALUES (:wh, :wh, 'integration test') ON CONFLICT DO NOTHING"
                ),
                {"wh": warehouse_id},
            )

    async def stock(self, sku: str) -> dict[str, tuple[int, int]]:
        """warehouse -> (on hand, reserved)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT warehouse_id, on_hand, reserved FROM inventory_service.stock_levels WHERE sku = :sku"),
                {"sku": sku},
            )
            return {wh: (on_hand, reserved) for wh, on_hand, reserved in rows.all()}

    async def wait_for_stock(self, sku: str, expected: dict[str, tuple[int, int]], timeout_s: float = 30.0) -> None:
        """Stock settles after the order's last event: inventory takes shipped units out on Shipped."""
        await eventually(lambda: self.stock(sku), lambda levels: levels == expected, timeout_s=timeout_s)

    # ------------------------------------------------------------- kafka

    async def publish(self, topic: str, value: bytes, key: str | None = None) -> None:
        producer = AIOKafkaProducer(**self.infra.kafka.client_args(), enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value=value, key=key.encode() if key else None)
        finally:
            await producer.stop()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        admin = AIOKafkaAdminClient(**self.infra.kafka.client_args())
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        assert described["error_code"] == 0, f"topic {topic}: error {described['error_code']}"
        return [
            TopicPartition(topic, p["partition"]) for p in sorted(described["partitions"], key=lambda p: p["partition"])
        ]

    async def records(self, topic: str, key: str | None = None) -> list[Any]:
        """Every record of a topic (optionally only one key), read from the start, without a group."""
        consumer = AIOKafkaConsumer(
            **self.infra.kafka.client_args(), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            partitions = await self.partitions(topic)
            consumer.assign(partitions)
            end = await consumer.end_offsets(partitions)
            # An explicit seek: seek_to_beginning() can race the reset that assign() starts.
            for tp, offset in (await consumer.beginning_offsets(partitions)).items():
                consumer.seek(tp, offset)
            found: list[Any] = []
            remaining = {tp for tp in partitions if end[tp] > 0}
            while remaining:
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        if key is None or (record.key or b"").decode() == key:
                            found.append(record)
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
                if not batch:
                    for tp in list(remaining):
                        if await consumer.position(tp) >= end[tp]:
                            remaining.discard(tp)
            return found
        finally:
            await consumer.stop()

    async def envelopes(self, topic: str, order_id: UUID | str) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in await self.records(topic, str(order_id))]


def order_body(
    lines: Iterable[tuple[str, int, int]],
    *,
    token: str = "tok_approve",
    channel: str = "web",
    reference: str | None = None,
    email: str = "jane.doe@example.com",
) -> dict[str, Any]:
    return {
        "channel": channel,
        "external_reference": reference or f"EXT-{uuid4().hex[:12]}",
        "customer": {"customer_id": "cust-42", "name": "Jane Doe", "email": email, "phone": "+49 30 1234567"},
        "lines": [{"sku": sku, "quantity": qty, "unit_price_minor": price} for sku, qty, price in lines],
        "currency": "EUR",
        "shipping_address": {
            "name": "Jane Doe",
            "line1": "Invalidenstrasse 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "delivery_method": "standard",
        "payment_token": token,
    }


def timeline_events(order: dict[str, Any]) -> list[str]:
    """The event names of an order's timeline (GET /orders/{id}), oldest first."""
    return [t["event"] for t in order["timeline"]]


def message_types(envelopes: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in envelopes]


def unique_sku(prefix: str = "SKU-IT") -> str:
    return f"{prefix}-{uuid4().hex[:10].upper()}"


@contextlib.contextmanager
def restarted(service: ServiceProcess) -> Any:
    try:
        yield service
    finally:
        if service.process is None or service.process.poll() is not None:
            service.start()
