"""Consuming messages: parse, dead-letter the poison, process once, commit, then ack.

For every batch of records a consumer polls:
1. The bytes are parsed into an envelope and a typed message. Bad JSON, a bad envelope, an unknown
   type or a payload that fails validation go to the service's dead-letter topic with the reason
   and the original bytes; the consumer moves on. A consumer may also answer a payload that fails
   validation (its envelope is readable, so there is someone to answer): its `RejectionHandler`
   emits messages in one transaction with an inbox record, before the dead-lettering.
2. A message type the consumer has no handler for is skipped: topics carry many types. On the OMS's
   own topics the record's `type` header says so before any parsing (most records a consumer sees are
   of types it does not handle); on a topic upstream systems write to (`UPSTREAM_TOPICS`) the header is
   not trusted, and the value is parsed.
3. Otherwise the inbox records, the handlers' state changes and their outgoing messages commit in
   one database transaction for the whole batch, the handlers run in the records' order: one inbox
   statement and one outbox statement per batch instead of a transaction per record, which was most
   of the cost of a message. A message already in the inbox has no second effect. A consumer whose
   handlers can share reads and writes across the batch sets a `BatchScope` on its `HandlerMap`: told
   the batch's messages before the first handler runs and ended after the last one, inside the same
   transaction, it can load every stream the batch touches in one statement and write each table
   once (order-service's saga does), so that statements count per batch instead of per message.
4. If that transaction fails, it rolls back and the batch's records run again one by one, each in
   a transaction of its own. A handler that keeps failing is retried with backoff, then
   dead-lettered with the error, unless the database does not answer (checked after the last
   attempt): an outage is not the message's fault, so it is not dead-lettered; `DependencyUnavailableError` makes the consumer seek back, and
   the batch is retried until the database is back (the inbox skips what was done).
5. Only then does FastStream commit the offset (see `subscribe`).
"""

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid5

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import ContractMessage, ContractViolationError, Envelope, MessageRegistry
from oms_events.topics import UPSTREAM_TOPICS
from oms_runtime import metrics, tracing
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore, PendingAppends
from oms_runtime.inbox import Inbox
from oms_runtime.logging import get_logger
from oms_runtime.outbox import Outbox
from oms_runtime.tracing import current_trace_context

log = get_logger(__name__)

M = TypeVar("M", bound=ContractMessage)


@dataclass
class MessageContext:
    """What a handler gets besides its message: the open transaction and a way to emit messages.

    `envelope` is the message being handled; it is None for work that starts at an API call.
    """

    session: AsyncSession
    envelope: Envelope | None
    producer_name: str
    registry: MessageRegistry
    outbox: Outbox
    emitted: list[Envelope] = field(default_factory=list)

    async def emit(self, message: ContractMessage) -> Envelope:
        """Queue a message in the outbox; it is published only if this transaction commits."""
        envelope = self.registry.wrap(
            message, producer=self.producer_name, causation=self.envelope, trace_context=current_trace_context()
        )
        await self.outbox.add(self.session, message.topic, message.key, envelope)
        self.emitted.append(envelope)
        return envelope

    async def record(
        self,
        store: EventStore,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[ContractMessage],
        pending: PendingAppends | None = None,
    ) -> list[Envelope]:
        """Append events to a stream and queue them for publishing, in this one transaction; with
        `pending`, the append is queued there, for the caller to write before the transaction ends."""
        trace_context = current_trace_context()
        envelopes = [
            self.registry.wrap(e, producer=self.producer_name, causation=self.envelope, trace_context=trace_context)
            for e in events
        ]
        values = [e.to_bytes() for e in envelopes]
        if pending is None:
            await store.append(self.session, stream_id, stream_type, expected_version, envelopes, values)
        else:
            pending.add(stream_id, stream_type, expected_version, envelopes, values)
        for event, envelope, value in zip(events, envelopes, values, strict=True):
            await self.outbox.add(self.session, event.topic, event.key, envelope, value)
        self.emitted.extend(envelopes)
        return envelopes


Handler = Callable[[MessageContext, Any], Awaitable[None]]

RejectionHandler = Callable[[MessageContext, Envelope, ContractViolationError], Awaitable[None]]
"""Called for a message of a handled type whose payload fails validation, inside a transaction: it may
emit messages (e.g. a rejection for the sender). `error.errors` names the bad fields; the raw payload
is `envelope.payload`. The message is dead-lettered all the same."""


class BatchScope(Protocol):
    """Work a consumer's handlers share across one batch transaction (see the module's step 3).

    `begin` gets the messages the handlers are about to get (duplicates left out), in order; `end` runs
    after the last handler, before the inbox and outbox rows are written and the transaction commits. If
    either raises, the batch rolls back and its records run one by one, each in a transaction of its own
    without the scope: handlers must then work alone, as they do when a batch holds one record."""

    async def begin(self, session: AsyncSession, messages: Sequence[Any]) -> None: ...

    async def end(self, session: AsyncSession) -> None: ...


class HandlerMap:
    """Message type -> handler, for one consumer."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self.batch_scope: BatchScope | None = None

    def register(self, message_class: type[M], handler: Callable[[MessageContext, M], Awaitable[None]]) -> None:
        if message_class.message_type in self._handlers:
            raise ValueError(f"{message_class.message_type} already has a handler")
        self._handlers[message_class.message_type] = handler

    def get(self, message_type: str) -> Handler | None:
        return self._handlers.get(message_type)

    @property
    def message_types(self) -> frozenset[str]:
        return frozenset(self._handlers)


class DependencyUnavailableError(RuntimeError):
    """The database did not answer while handling a message (checked after the last attempt).

    Raised out of the processor, so that the consumer seeks back instead of committing: an outage
    pauses consumption rather than dead-lettering every message that arrives during it.
    """


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


_SECRET_FIELD = re.compile(rb'"payment_token"\s*:\s*"(?:[^"\\]|\\.)*"')
REDACTED_HEADER = "dlq.redacted"


def redact_secrets(value: bytes) -> tuple[bytes, bool]:
    """The record's bytes with every payment token's value replaced, and whether there was one.

    Dead-letter topics are read by operators and kept for weeks: a token has no place there. Found in
    the bytes, not in parsed JSON, since a dead letter is often bytes that do not parse."""
    redacted, count = _SECRET_FIELD.subn(b'"payment_token":"[redacted]"', value)
    return redacted, count > 0


class DeadLetterPublisher:
    """Sends a record to the dead-letter topic with its reason; waits for the broker's ack.

    Payment tokens in the record are redacted first (`redact_secrets`, marked by the `dlq.redacted`
    header); such a letter cannot be redriven as it is (`oms_runtime.dead_letters.redrive_record`)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, consumer: str) -> None:
        self._producer = producer
        self.topic = topic
        self._consumer = consumer

    async def send(self, record: SourceRecord, reason: str) -> None:
        value, redacted = redact_secrets(record.value)
        headers = [
            *record.headers,
            *([(REDACTED_HEADER, b"payment_token")] if redacted else []),
            ("dlq.reason", reason.encode()[:8000]),
            ("dlq.consumer", self._consumer.encode()),
            ("dlq.source_topic", record.topic.encode()),
            ("dlq.source_partition", str(record.partition).encode()),
            ("dlq.source_offset", str(record.offset).encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self._producer.send_and_wait(self.topic, value=value, key=record.key, headers=headers)
        metrics.DEAD_LETTERS.labels(
            consumer=self._consumer, source_topic=record.topic, dead_letter_topic=self.topic
        ).inc()
        log.warning(
            "message dead-lettered",
            reason=reason,
            dead_letter_topic=self.topic,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
        )


_DEAD_LETTER_PLACES = UUID("6f1d7c2e-3b4a-5c6d-8e9f-0a1b2c3d4e5f")
"""The namespace of the inbox ids that stand for a dead-lettered record's place (uuid5 of topic/partition/offset)."""
_DEAD_LETTERED = "dead-lettered record"


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Done:
    """A record settled without a handler: skipped, or dead-lettered."""

    outcome: Outcome
    message_type: str = "unreadable"


@dataclass(slots=True)
class _Work:
    """A record that parsed, validated and has a handler: it waits for the batch's transaction."""

    record: SourceRecord
    envelope: Envelope
    message: ContractMessage
    handler: Handler
    message_type: str
    outcome: Outcome | None = None


class MessageProcessor:
    def __init__(
        self,
        *,
        consumer: str,
        producer_name: str,
        db: Database,
        registry: MessageRegistry,
        handlers: HandlerMap,
        dead_letters: DeadLetterPublisher,
        max_attempts: int = 5,
        retry_backoff_s: float = 0.2,
        rejection_handler: RejectionHandler | None = None,
    ) -> None:
        self.consumer = consumer
        self._producer_name = producer_name
        self._db = db
        self._registry = registry
        self._handlers = handlers
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self._rejection_handler = rejection_handler
        self._inbox = Inbox()
        self._outbox = Outbox()

    async def process(self, record: SourceRecord) -> Outcome:
        return (await self.process_batch([record]))[0]

    async def process_batch(self, records: Sequence[SourceRecord]) -> list[Outcome]:
        """Processes a polled batch: one transaction for all its good records, in their order.

        Poison is dead-lettered on its own as it is met. If the batch's transaction fails, it rolls
        back as a whole and its records are processed again one by one, each in a transaction of its
        own with retries, so a failing message is dead-lettered alone and the others take effect.
        """
        classified = [self._skippable(record) or await self._classify(record) for record in records]
        work = [w for w in classified if isinstance(w, _Work)]
        if work:
            await self._handle_batch(work)
        outcomes: list[Outcome] = []
        for record, item in zip(records, classified, strict=True):
            outcome = item.outcome
            assert outcome is not None
            metrics.MESSAGES_CONSUMED.labels(
                consumer=self.consumer, topic=record.topic, type=item.message_type, outcome=outcome.value
            ).inc()
            outcomes.append(outcome)
        return outcomes

    def _skippable(self, record: SourceRecord) -> "_Done | None":
        """A record of a known type this consumer does not handle, told by its `type` header alone."""
        if record.topic in UPSTREAM_TOPICS:
            return None
        for name, value in record.headers:
            if name == "type":
                message_type = value.decode(errors="replace")
                if self._handlers.get(message_type) is None and self._registry.knows(message_type):
                    return _Done(Outcome.SKIPPED, message_type)
                return None
        return None

    async def _classify(self, record: SourceRecord) -> "_Done | _Work":
        """Parses a record; dead-letters poison (answering it first if a rejection handler is set)."""
        try:
            envelope = self._registry.parse_envelope(record.value)
        except ContractViolationError as exc:
            await self._dead_letter(record, exc.reason)
            return _Done(Outcome.DEAD_LETTERED)
        # Only known types become label values: a flood of made-up types must not blow up the metrics.
        known_type = envelope.type if self._registry.knows(envelope.type) else "unknown"
        handler = self._handlers.get(envelope.type)
        if handler is None:
            if self._registry.knows(envelope.type):
                return _Done(Outcome.SKIPPED, known_type)
            await self._dead_letter(record, f"unknown message type {envelope.type!r}")
            return _Done(Outcome.DEAD_LETTERED, known_type)
        try:
            message = self._registry.decode_any(envelope)
        except ContractViolationError as exc:
            with self._message_scope(envelope, record):
                reason = exc.reason
                if self._rejection_handler is not None:
                    failure = await self._reject(envelope, exc, self._rejection_handler)
                    if failure is not None:
                        reason = f"{reason}; rejection not sent: {failure}"
                await self._dead_letter(record, reason)
            return _Done(Outcome.DEAD_LETTERED, known_type)
        return _Work(record, envelope, message, handler, known_type)

    async def _dead_letter(self, record: SourceRecord, reason: str) -> None:
        """Sends a record to the dead-letter topic once, even when it is read again.

        The record's offset is committed only after its whole batch: a process that dies after the
        dead letter was sent reads the record again. Its place (topic, partition, offset) is therefore kept
        in the inbox once the broker took the dead letter, and a record already there is not sent again. A
        copy of it published anew has a place of its own, and goes too. When the database does not answer,
        the record is dead-lettered all the same: a second copy beats a lost one."""
        place = uuid5(_DEAD_LETTER_PLACES, f"{record.topic}/{record.partition}/{record.offset}")
        try:
            async with self._db.transaction() as session:
                if await self._inbox.seen(session, self.consumer, place):
                    log.info("record already dead-lettered", source_topic=record.topic, source_offset=record.offset)
                    return
        except Exception as exc:
            log.warning("dead-letter ledger not read; dead-lettering anyway", error=f"{type(exc).__name__}: {exc}")
        await self._dead_letters.send(record, reason)
        try:
            async with self._db.transaction() as session:
                await self._inbox.record_ids(session, self.consumer, [place], _DEAD_LETTERED)
        except Exception as exc:
            log.warning("dead letter not recorded; it may be sent again", error=f"{type(exc).__name__}: {exc}")

    def _message_scope(self, envelope: Envelope, record: SourceRecord) -> contextlib.ExitStack:
        """The consuming span and the log context of one message."""
        scope = contextlib.ExitStack()
        scope.enter_context(tracing.consuming(envelope, record.topic, self.consumer))
        scope.enter_context(
            structlog.contextvars.bound_contextvars(
                # Messages about a sku (stock events) are correlated by the sku when no order caused them.
                order_id=envelope.correlation_id if _is_uuid(envelope.correlation_id) else None,
                correlation_id=envelope.correlation_id,
                message_id=str(envelope.event_id),
                message_type=envelope.type,
            )
        )
        return scope

    async def _handle_batch(self, work: Sequence[_Work]) -> None:
        if len(work) > 1:
            try:
                await self._handle_together(work)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                for item in work:
                    item.outcome = None
                log.warning(
                    "batch transaction failed; processing its messages one by one",
                    messages=len(work),
                    error=f"{type(exc).__name__}: {exc}",
                )
        for item in work:
            with self._message_scope(item.envelope, item.record):
                item.outcome = await self._handle(item.record, item.envelope, item.message, item.handler)

    async def _handle_together(self, work: Sequence[_Work]) -> None:
        """All records of the batch in one transaction: one inbox statement, one outbox statement."""
        async with self._db.transaction() as session:
            fresh = await self._inbox.record_many(session, self.consumer, [w.envelope for w in work])
            scope = self._handlers.batch_scope
            if scope is not None:
                firsts: set[UUID] = set()
                messages = []
                for item in work:
                    if item.envelope.event_id in fresh and item.envelope.event_id not in firsts:
                        firsts.add(item.envelope.event_id)
                        messages.append(item.message)
                await scope.begin(session, messages)
            for item in work:
                event_id = item.envelope.event_id
                if event_id not in fresh:
                    item.outcome = Outcome.DUPLICATE
                    continue
                fresh.discard(event_id)  # the same message twice in a batch takes effect once
                with self._message_scope(item.envelope, item.record):
                    started = time.perf_counter()
                    context = MessageContext(
                        session=session,
                        envelope=item.envelope,
                        producer_name=self._producer_name,
                        registry=self._registry,
                        outbox=self._outbox,
                    )
                    try:
                        await item.handler(context, item.message)
                        # The next handler starts from the database, as it would in a transaction of
                        # its own: no object loaded or changed by this one stays in the session.
                        # (Most handlers use Core statements only: then there is nothing to do.)
                        if session.new or session.dirty or session.deleted:
                            await session.flush()
                        if session.identity_map:
                            session.expunge_all()
                    except Exception:
                        metrics.HANDLER_ERRORS.labels(consumer=self.consumer, type=item.envelope.type).inc()
                        raise
                    metrics.HANDLER_DURATION.labels(consumer=self.consumer, type=item.envelope.type).observe(
                        time.perf_counter() - started
                    )
                    item.outcome = Outcome.PROCESSED
            if scope is not None:
                await scope.end(session)
        duplicates = sum(1 for w in work if w.outcome is Outcome.DUPLICATE)
        if duplicates:
            log.info("duplicate messages ignored", duplicates=duplicates)

    async def _reject(
        self, envelope: Envelope, error: ContractViolationError, rejection_handler: RejectionHandler
    ) -> str | None:
        """Runs the rejection handler once per message (inbox), retrying like a handler; None when done.

        A rejection handler that keeps failing does not stop the consumer: the failure is returned so
        that it goes into the dead letter's reason.
        """
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with self._db.transaction() as session:
                    if not await self._inbox.record(session, self.consumer, envelope):
                        log.info("invalid message already answered")
                        return None
                    context = MessageContext(
                        session=session,
                        envelope=envelope,
                        producer_name=self._producer_name,
                        registry=self._registry,
                        outbox=self._outbox,
                    )
                    await rejection_handler(context, envelope, error)
                log.info("invalid message answered", emitted=[e.type for e in context.emitted])
                return None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self._max_attempts:
                    log.warning(
                        "rejection handler failed",
                        attempts=attempt,
                        error=f"{type(exc).__name__}: {exc}",
                        exc_info=True,
                    )
                    return f"rejection handler failed after {attempt} attempts: {type(exc).__name__}: {exc}"
                log.warning("rejection handler failed; retrying", attempt=attempt, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self._retry_backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def _database_answers(self, timeout_s: float = 2.0) -> bool:
        """Asked after the last failed attempt: is the database down, rather than the message bad?"""
        try:
            await asyncio.wait_for(self._db.ping(), timeout_s)
        except Exception:
            return False
        return True

    async def _handle(
        self, record: SourceRecord, envelope: Envelope, message: ContractMessage, handler: Handler
    ) -> Outcome:
        for attempt in range(1, self._max_attempts + 1):
            started = time.perf_counter()
            try:
                async with self._db.transaction() as session:
                    if not await self._inbox.record(session, self.consumer, envelope):
                        log.info("duplicate message ignored")
                        return Outcome.DUPLICATE
                    context = MessageContext(
                        session=session,
                        envelope=envelope,
                        producer_name=self._producer_name,
                        registry=self._registry,
                        outbox=self._outbox,
                    )
                    await handler(context, message)
                metrics.HANDLER_DURATION.labels(consumer=self.consumer, type=envelope.type).observe(
                    time.perf_counter() - started
                )
                log.debug("message processed", emitted=[e.type for e in context.emitted])
                return Outcome.PROCESSED
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.HANDLER_ERRORS.labels(consumer=self.consumer, type=envelope.type).inc()
                if attempt == self._max_attempts and not await self._database_answers():
                    log.warning("database unavailable; the batch will be retried", error=f"{type(exc).__name__}: {exc}")
                    raise DependencyUnavailableError(f"database unavailable: {type(exc).__name__}: {exc}") from exc
                if attempt == self._max_attempts:
                    # Handled: the message goes aside with its reason and the consumer goes on (the
                    # traceback is for whoever fixes the handler).
                    log.warning(
                        "handler failed; dead-lettering",
                        attempts=attempt,
                        error=f"{type(exc).__name__}: {exc}",
                        exc_info=True,
                    )
                    await self._dead_letter(
                        record, f"handler failed after {attempt} attempts: {type(exc).__name__}: {exc}"
                    )
                    return Outcome.DEAD_LETTERED
                log.warning("handler failed; retrying", attempt=attempt, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self._retry_backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")
