"""The service host: one place that starts and stops everything a service runs.

Start order: database schema, topics, producer, outbox relay, consumers, HTTP. Stop order is the
reverse, so in-flight messages finish and their outbox rows are published before the producer
closes.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from sqlalchemy import MetaData

from oms_events import MessageRegistry, default_registry
from oms_events.topics import ALL_TOPICS, dead_letter_topic
from oms_runtime.db import Database
from oms_runtime.eventstore import runtime_metadata
from oms_runtime.kafka import ensure_topics, idempotent_producer
from oms_runtime.logging import get_logger
from oms_runtime.messaging import DeadLetterPublisher, HandlerMap, MessageProcessor, RejectionHandler, SourceRecord
from oms_runtime.outbox import OutboxRelay
from oms_runtime.settings import ServiceSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group: the topics it reads and its handlers.

    `rejection_handler` (optional) answers a message of a handled type whose payload fails validation,
    e.g. with a rejection event for its sender; the message is dead-lettered all the same.
    """

    group_id: str
    topics: Sequence[str]
    handlers: HandlerMap
    rejection_handler: RejectionHandler | None = None


async def _raw_body(message: StreamMessage[Any]) -> Any:
    # The processor parses and validates itself, so that poison can be dead-lettered with a reason.
    return message.body


class ServiceHost:
    def __init__(
        self,
        service: str,
        settings: ServiceSettings,
        *,
        metadata: Sequence[MetaData] = (),
        registry: MessageRegistry | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.registry = registry or default_registry()
        self.db = Database.for_service(settings, service)
        self.producer = idempotent_producer(settings.kafka_bootstrap_servers, client_id=service)
        self.relay = OutboxRelay(
            self.db,
            self.producer,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
        )
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=service,
            logger=logging.getLogger(f"{service}.faststream"),
            log_level=logging.DEBUG,
            graceful_timeout=20.0,
            # A safety net: a topic a consumer missed at start is picked up within this time.
            metadata_max_age_ms=30_000,
        )
        self.dead_letters = DeadLetterPublisher(self.producer, dead_letter_topic(service), consumer=service)
        self._metadata = [runtime_metadata, *metadata]
        self._start_hooks: list[Callable[[], Awaitable[None]]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._asgi_app: Any = None
        self._http: tuple[str, int] | None = None
        self._server: Any = None
        self._server_task: asyncio.Task[None] | None = None
        self.processors: dict[str, MessageProcessor] = {}

    def add_consumer(self, spec: ConsumerSpec) -> MessageProcessor:
        processor = MessageProcessor(
            consumer=spec.group_id,
            producer_name=self.service,
            db=self.db,
            registry=self.registry,
            handlers=spec.handlers,
            dead_letters=self.dead_letters,
            on_commit=self.relay.notify,
            max_attempts=self.settings.consumer_max_attempts,
            retry_backoff_s=self.settings.consumer_retry_backoff_s,
            rejection_handler=spec.rejection_handler,
        )
        subscriber = self.broker.subscriber(
            *spec.topics,
            group_id=spec.group_id,
            # Records come in batches (one offset commit per batch, not per record); each record
            # still gets its own transaction. The offsets are committed only after every record of
            # the batch committed; on an unexpected error (e.g. the dead-letter topic unreachable)
            # the consumer seeks back to the batch's first records and the inbox skips the ones
            # already done.
            batch=True,
            max_records=self.settings.consumer_batch_size,
            batch_timeout_ms=100,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            decoder=_raw_body,
        )

        async def consume(body: Any, message: KafkaMessage) -> None:
            records = message.raw_message
            for record in records if isinstance(records, tuple) else (records,):
                await processor.process(
                    SourceRecord(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        key=record.key,
                        value=record.value,
                        headers=tuple(record.headers or ()),
                    )
                )

        subscriber(consume)
        self.processors[spec.group_id] = processor
        return processor

    def serve_http(self, app: Any, host: str, port: int) -> None:
        self._asgi_app = app
        self._http = (host, port)

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._start_hooks.append(hook)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._stop_hooks.append(hook)

    async def start(self) -> None:
        await self.db.create_schema(*self._metadata)
        await ensure_topics(self.settings.kafka_bootstrap_servers, ALL_TOPICS)
        await self.producer.start()
        await self.relay.start()
        for hook in self._start_hooks:
            await hook()
        await self.broker.start()
        if self._asgi_app is not None and self._http is not None:
            import uvicorn

            config = uvicorn.Config(
                self._asgi_app, host=self._http[0], port=self._http[1], log_level="warning", lifespan="off"
            )
            self._server = uvicorn.Server(config)
            self._server_task = asyncio.create_task(self._server.serve(), name="http")
            while not self._server.started:
                if self._server_task.done():
                    await self._server_task
                    raise RuntimeError(f"HTTP server could not start on {self._http[0]}:{self._http[1]}")
                await asyncio.sleep(0.05)
        log.info("service started", http=f"{self._http[0]}:{self._http[1]}" if self._http else None)

    async def stop(self) -> None:
        log.info("service stopping")
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._server_task
        # Consumers finish the message in hand and commit before they leave the group.
        await self.broker.stop()
        for hook in reversed(self._stop_hooks):
            await hook()
        await self.relay.stop()
        await self.producer.stop()
        await self.db.dispose()
        log.info("service stopped")

    async def run_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
