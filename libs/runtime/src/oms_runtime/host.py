"""The service host: one place that starts and stops everything a service runs.

Start order: HTTP (probes only: readiness says what the start waits on, the API answers 503), then
database schema, topics, producer, outbox relay, consumers, and then the API. Stop order is the
reverse, so in-flight messages finish and their outbox rows are published before the producer
closes.

A dependency that is down or still recovering at start (the broker restarting, PostgreSQL in crash
recovery) is waited for (`oms_runtime.startup`): each step is retried with a bounded backoff and a
WARNING naming the step and the reason, while `/health/live` answers and `/health/ready` says
"starting: <step>". A process that exits instead would be restarted into the same outage by its
supervisor (a crash loop, and a supervisor that gives up).

Every service serves HTTP: `/health/live`, `/health/ready` (broker, database and cache) and
`/metrics` come from the host (`oms_runtime.ops_http`), in front of the service's own app if it
gives one with `serve_http`.
"""

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import uvloop
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from redis.asyncio import Redis
from sqlalchemy import MetaData

from oms_events import MessageRegistry, default_registry
from oms_events.topics import ALL_TOPICS, dead_letter_topic
from oms_runtime import metrics
from oms_runtime.db import Database
from oms_runtime.dead_letter_api import dead_letter_router
from oms_runtime.environment import refuse_simulations
from oms_runtime.eventstore import runtime_metadata
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.kafka import LagProbe, ensure_topics, idempotent_producer
from oms_runtime.logging import get_logger
from oms_runtime.messaging import DeadLetterPublisher, HandlerMap, MessageProcessor, RejectionHandler, SourceRecord
from oms_runtime.ops_http import DependencyCheck, Readiness, ops_app
from oms_runtime.outages import loop_exception_handler
from oms_runtime.relay import OutboxRelay
from oms_runtime.retention import RetentionPruner
from oms_runtime.settings import ServiceSettings
from oms_runtime.startup import until_reachable
from oms_runtime.tracing import configure_tracing, shutdown_tracing

log = get_logger(__name__)

DEFAULT_HTTP_PORTS = {
    "order-service": 8000,
    "inventory-service": 8001,
    "payment-service": 8002,
    "fulfilment-service": 8003,
    "notification-service": 8004,
}
"""Local defaults (deploy/local/services.sh uses the same); HTTP_PORT overrides them."""


class ShutdownTooSlowError(RuntimeError):
    """The service did not stop within SHUTDOWN_GRACE_S after SIGTERM."""


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group: the topics it reads and its handlers.

    `rejection_handler` (optional) answers a message of a handled type whose payload fails validation,
    e.g. with a rejection event for its sender; the message is dead-lettered all the same.
    `fetch_min_bytes` and `fetch_max_wait_ms` (optional) override the service's settings for this group: a
    group that may lag a little (one that reads every topic for few of its records) fetches bigger batches,
    so it polls and commits far less often per record.
    """

    group_id: str
    topics: Sequence[str]
    handlers: HandlerMap
    rejection_handler: RejectionHandler | None = None
    fetch_min_bytes: int | None = None
    fetch_max_wait_ms: int | None = None


def run_service(main: Coroutine[Any, Any, None], event_loop: str = "uvloop") -> None:
    """Runs a service's main coroutine to its end on the event loop its settings name (`EVENT_LOOP`).

    uvloop by default: a service spends much of its CPU in the loop itself (socket writes that wake
    PostgreSQL and the broker, callbacks, timers), which libuv does in C; `asyncio` is the fallback."""
    if event_loop == "uvloop":
        uvloop.run(main)
    else:
        asyncio.run(main)


async def _raw_records(message: StreamMessage[Any]) -> Any:
    """The polled records themselves, as the handler's one argument.

    The processor parses and validates itself, so that poison can be dead-lettered with a reason. Taking
    the records as the body (rather than asking FastStream's dependency injection for the message, a
    context field it resolves in a worker thread) spares a thread hop per polled batch."""
    return message.raw_message


class ServiceHost:
    def __init__(
        self,
        service: str,
        settings: ServiceSettings,
        *,
        metadata: Sequence[MetaData] = (),
        registry: MessageRegistry | None = None,
    ) -> None:
        # Before anything else: a production service that would only pretend never gets going.
        refuse_simulations(service, settings)
        self.service = service
        self.settings = settings
        self.registry = registry or default_registry()
        configure_tracing(service, settings.otel_traces_exporter, settings.otel_exporter_otlp_endpoint)
        self.db = Database.for_service(settings, service)
        # Every Kafka client below connects the same way (TLS, SASL): oms_runtime.kafka_connection.
        self.kafka = settings.kafka_connection()
        self.producer = idempotent_producer(self.kafka, client_id=service, linger_ms=settings.kafka_linger_ms)
        self.relay = OutboxRelay(
            self.db,
            self.producer,
            batch_size=settings.outbox_batch_size,
            sweep_interval_s=settings.outbox_sweep_interval_s,
            sweep_after_s=settings.outbox_sweep_after_s,
        )
        self.retention = RetentionPruner(
            self.db,
            inbox_retention=timedelta(seconds=settings.inbox_retention_s),
            outbox_retention=timedelta(seconds=settings.outbox_retention_s),
            interval_s=settings.retention_interval_s,
        )
        self.broker = KafkaBroker(
            self.kafka.bootstrap_servers,
            security=self.kafka.security,
            client_id=service,
            logger=logging.getLogger(f"{service}.faststream"),
            log_level=logging.DEBUG,
            # Part of the grace period for the handlers in flight; the rest publishes and closes.
            graceful_timeout=max(1.0, settings.shutdown_grace_s * 0.6),
            # A safety net: a topic a consumer missed at start is picked up within this time.
            metadata_max_age_ms=30_000,
        )
        self.dead_letters = DeadLetterPublisher(self.producer, dead_letter_topic(service), consumer=service)
        self._metadata = [runtime_metadata, *metadata]
        self._start_hooks: list[Callable[[], Awaitable[None]]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._asgi_app: Any = None
        port = settings.http_port if settings.http_port is not None else DEFAULT_HTTP_PORTS.get(service, 8000)
        self._http: tuple[str, int] = (settings.http_host, port)
        self._server: Any = None
        self._server_task: asyncio.Task[None] | None = None
        self.processors: dict[str, MessageProcessor] = {}
        self._consumer_topics: dict[str, tuple[str, ...]] = {}
        # The cache check gets a client of its own: a service that uses no Redis is still told when it
        # is gone, and a service's own pool exhaustion does not read as a cache outage.
        self._cache = Redis.from_url(settings.redis_url, socket_timeout=settings.readiness_timeout_s)
        self.readiness = Readiness(
            [
                DependencyCheck("broker", self._broker_ready),
                DependencyCheck("database", self.db.ping),
                DependencyCheck("cache", self._cache.ping),
            ],
            timeout_s=settings.readiness_timeout_s,
        )
        self._lag = LagProbe(self.kafka, client_id=service)

    def add_consumer(self, spec: ConsumerSpec) -> MessageProcessor:
        processor = MessageProcessor(
            consumer=spec.group_id,
            producer_name=self.service,
            db=self.db,
            registry=self.registry,
            handlers=spec.handlers,
            dead_letters=self.dead_letters,
            max_attempts=self.settings.consumer_max_attempts,
            retry_backoff_s=self.settings.consumer_retry_backoff_s,
            rejection_handler=spec.rejection_handler,
        )
        subscriber = self.broker.subscriber(
            *spec.topics,
            group_id=spec.group_id,
            # Records come in batches: one transaction and one offset commit per batch (see
            # MessageProcessor.process_batch). The offsets are committed only after the batch
            # committed; on an unexpected error (e.g. the dead-letter topic unreachable) the
            # consumer seeks back to the batch's first records and the inbox skips the ones
            # already done.
            batch=True,
            max_records=self.settings.consumer_batch_size,
            batch_timeout_ms=100,
            fetch_min_bytes=spec.fetch_min_bytes or self.settings.kafka_fetch_min_bytes,
            fetch_max_wait_ms=spec.fetch_max_wait_ms or self.settings.kafka_fetch_max_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            decoder=_raw_records,
        )

        async def consume(records: Any) -> None:
            await processor.process_batch(
                [
                    SourceRecord(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        key=record.key,
                        value=record.value,
                        headers=tuple(record.headers or ()),
                    )
                    for record in (records if isinstance(records, tuple) else (records,))
                ]
            )

        subscriber(consume)
        self.processors[spec.group_id] = processor
        self._consumer_topics[spec.group_id] = tuple(spec.topics)
        return processor

    def serve_http(self, app: Any, host: str, port: int, *, ops_auth: ApiKeyAuthenticator | None = None) -> None:
        """Serve the service's own API (beside the host's probes and metrics) on host:port.

        With `ops_auth`, the API also gets the dead-letter routes (`oms_runtime.dead_letter_api`, ops keys):
        in the service's app, so they are in its OpenAPI document."""
        if ops_auth is not None:
            router, close = dead_letter_router(
                dead_letter_topic(self.service),
                self.kafka,
                self.settings.database_url,
                ops_auth,
            )
            app.include_router(router)
            self.on_stop(close)
        self._asgi_app = app
        self._http = (host, port)

    @property
    def service_app(self) -> Any:
        """The service's own app given to `serve_http` (None if it has none): its OpenAPI document is the API's."""
        return self._asgi_app

    @property
    def http_address(self) -> tuple[str, int]:
        return self._http

    def asgi_app(self) -> Any:
        """What the HTTP server runs: probes and metrics in front of the service's app."""
        return ops_app(self.service, self.readiness, self.refresh_gauges, self._asgi_app)

    async def _broker_ready(self) -> None:
        # A metadata round trip through the producer's connection: the broker answers, or it does not.
        await self.producer.client.fetch_all_metadata()

    async def refresh_gauges(self) -> None:
        """Gauges that need I/O, refreshed for a scrape; a failure leaves the last values in place."""
        timeout = self.settings.readiness_timeout_s
        try:
            age, pending = await asyncio.wait_for(self.relay.backlog(), timeout)
            metrics.OUTBOX_LAG.set(age)
            metrics.OUTBOX_PENDING.set(pending)
        except Exception as exc:
            log.warning("outbox lag not measured", error=f"{type(exc).__name__}: {exc}")
        for group, topics in self._consumer_topics.items():
            try:
                lags = await asyncio.wait_for(self._lag.lag(group, topics), timeout)
            except Exception as exc:
                log.warning("consumer lag not measured", group=group, error=f"{type(exc).__name__}: {exc}")
                continue
            for (topic, partition), lag in lags.items():
                metrics.CONSUMER_LAG.labels(group=group, topic=topic, partition=str(partition)).set(lag)

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._start_hooks.append(hook)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._stop_hooks.append(hook)

    async def start(self) -> None:
        self.readiness.starting = "http"
        await self._start_http()
        await self._step("database schema", lambda: self.db.create_schema(*self._metadata))
        if self.settings.kafka_create_topics:
            await self._step("topics", lambda: ensure_topics(self.kafka, ALL_TOPICS))
        await self._step("producer", self.producer.start)
        await self.relay.start()
        await self.retention.start()
        for hook in self._start_hooks:
            await self._step("start hook", hook)
        await self._step("consumers", self._start_consumers)
        self.readiness.starting = None
        log.info("service started", http=f"{self._http[0]}:{self._http[1]}")

    async def _step(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        self.readiness.starting = name
        await until_reachable(name, step, self.service)

    async def _start_consumers(self) -> None:
        try:
            await self.broker.start()
        except BaseException:
            # Some subscribers may have started: stopped (and disconnected), so the next attempt starts
            # each one once.
            with contextlib.suppress(Exception):
                await self.broker.stop()
            raise

    async def _start_http(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.asgi_app(),
            host=self._http[0],
            port=self._http[1],
            log_level="warning",
            # Our logging (JSON, masking, no statement parameters) stays in charge: uvicorn's own
            # config would give its loggers handlers of their own that bypass it.
            log_config=None,
            lifespan="off",
            # Requests in flight get this long after SIGTERM; new connections are refused at once.
            timeout_graceful_shutdown=max(1, int(self.settings.shutdown_grace_s * 0.2)),
        )
        self._server = uvicorn.Server(config)
        self._server_task = asyncio.create_task(self._server.serve(), name="http")
        while not self._server.started:
            if self._server_task.done():
                await self._server_task
                raise RuntimeError(f"HTTP server could not start on {self._http[0]}:{self._http[1]}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        log.info("service stopping")
        self.readiness.shutting_down = True
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._server_task
        # Consumers finish the message in hand and commit before they leave the group.
        await self.broker.stop()
        for hook in reversed(self._stop_hooks):
            await hook()
        await self.retention.stop()
        await self.relay.stop()
        await self.producer.stop()
        await self._lag.close()
        await self._cache.aclose()
        await self.db.dispose()
        shutdown_tracing()
        log.info("service stopped")

    async def run_until_signalled(self) -> None:
        """Runs until SIGTERM or SIGINT, then stops within SHUTDOWN_GRACE_S or fails loudly.

        An exit past the grace period is no data loss (offsets are committed only after each
        message's transaction, so unfinished messages are redelivered), but it is a bug to see.
        """
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(loop_exception_handler)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # A start still waiting for its dependencies ends on SIGTERM too (and then stops what it started).
        starting = asyncio.create_task(self.start(), name="start")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            if starting.exception() is not None:
                stopping.cancel()
                starting.result()
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        try:
            await stopping
        finally:
            started = time.monotonic()
            grace = self.settings.shutdown_grace_s
            try:
                await asyncio.wait_for(self.stop(), grace)
            except TimeoutError:
                log.error("shutdown exceeded the grace period", grace_s=grace)
                raise ShutdownTooSlowError(f"not stopped within {grace:g}s of SIGTERM") from None
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            log.info("shutdown complete", seconds=round(time.monotonic() - started, 2))
