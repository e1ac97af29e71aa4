"""A consumer's rejection handler: an invalid message is answered (once) through the outbox and still dead-lettered."""

import json
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from oms_events import ContractViolationError, Envelope, default_registry
from oms_events.messages import ReleaseStock
from oms_runtime.db import Database
from oms_runtime.messaging import (
    DependencyUnavailableError,
    HandlerMap,
    MessageContext,
    MessageProcessor,
    Outcome,
    RejectionHandler,
    SourceRecord,
)
from oms_runtime.testing import RecordingDeadLetters

registry = default_registry()


class Answers:
    """A rejection handler that answers with a ReleaseStock naming the bad fields (any message would do)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[list[str]] = []

    async def __call__(self, ctx: MessageContext, envelope: Envelope, error: ContractViolationError) -> None:
        self.calls.append([e.field for e in error.errors])
        await ctx.emit(ReleaseStock(order_id=UUID(envelope.correlation_id), reason=",".join(self.calls[-1])))
        if self.fail:
            raise RuntimeError("rejection store down")


def processor(db: Database, rejection_handler: RejectionHandler | None) -> tuple[MessageProcessor, list[str]]:
    handled: list[str] = []

    async def on_release(ctx: MessageContext, message: ReleaseStock) -> None:
        handled.append(message.reason)

    handlers = HandlerMap()
    handlers.register(ReleaseStock, on_release)
    return (
        MessageProcessor(
            consumer="test",
            producer_name="test",
            db=db,
            registry=registry,
            handlers=handlers,
            dead_letters=RecordingDeadLetters("test"),
            max_attempts=2,
            retry_backoff_s=0.0,
            rejection_handler=rejection_handler,
        ),
        handled,
    )


def record(value: bytes, offset: int = 0) -> SourceRecord:
    return SourceRecord(topic="oms.test", partition=0, offset=offset, key=b"k", value=value)


def invalid(order_id: UUID) -> bytes:
    envelope = registry.wrap(ReleaseStock(order_id=order_id, reason="x"), producer="t")
    data = json.loads(envelope.to_bytes())
    data["payload"] = {"order_id": "not-a-uuid"}  # and no reason
    return json.dumps(data).encode()


async def outbox_reasons(db: Database) -> list[str]:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT value FROM outbox ORDER BY id"))
        return [json.loads(v)["payload"]["reason"] for (v,) in rows.all()]


async def test_an_invalid_message_is_answered_once_and_dead_lettered_once(db: Database) -> None:
    answers = Answers()
    proc, handled = processor(db, answers)
    raw = invalid(uuid4())
    assert await proc.process(record(raw)) is Outcome.DEAD_LETTERED
    assert await outbox_reasons(db) == ["order_id,reason"]
    dead = proc._dead_letters
    assert isinstance(dead, RecordingDeadLetters)
    [(sent, reason)] = dead.sent
    assert sent.value == raw
    assert "order_id" in reason
    assert "reason" in reason

    # Read again (a crash before the offset commit): already in the dead-letter topic, answered once (inbox).
    assert await proc.process(record(raw)) is Outcome.DEAD_LETTERED
    assert len(dead.sent) == 1
    # The same bytes published anew, at another offset: another record, dead-lettered too.
    assert await proc.process(record(raw, 5)) is Outcome.DEAD_LETTERED
    assert len(dead.sent) == 2
    assert await outbox_reasons(db) == ["order_id,reason"]
    assert len(answers.calls) == 1

    # The consumer goes on.
    valid = registry.wrap(ReleaseStock(order_id=uuid4(), reason="ok"), producer="t")
    assert await proc.process(record(valid.to_bytes(), 1)) is Outcome.PROCESSED
    assert handled == ["ok"]


async def test_unreadable_bytes_are_only_dead_lettered(db: Database) -> None:
    answers = Answers()
    proc, _ = processor(db, answers)
    unknown = json.dumps({"type": "Nope", "schema_version": 1, "producer": "t", "correlation_id": "c", "payload": {}})
    for raw in (b"{not json", unknown.encode()):
        assert await proc.process(record(raw)) is Outcome.DEAD_LETTERED
    assert answers.calls == []
    assert await outbox_reasons(db) == []


async def test_a_failing_rejection_handler_rolls_back_and_the_message_is_still_dead_lettered(db: Database) -> None:
    answers = Answers(fail=True)
    proc, _ = processor(db, answers)
    assert await proc.process(record(invalid(uuid4()))) is Outcome.DEAD_LETTERED
    assert len(answers.calls) == 2, "retried like a handler"
    assert await outbox_reasons(db) == [], "the failed answer's outbox row rolled back"
    dead = proc._dead_letters
    assert isinstance(dead, RecordingDeadLetters)
    [(_, reason)] = dead.sent
    assert "rejection not sent: rejection handler failed after 2 attempts: RuntimeError" in reason


async def test_without_a_rejection_handler_nothing_is_answered(db: Database) -> None:
    proc, _ = processor(db, None)
    assert await proc.process(record(invalid(uuid4()))) is Outcome.DEAD_LETTERED
    assert await outbox_reasons(db) == []


async def test_a_database_that_does_not_answer_pauses_the_consumer_instead_of_dead_lettering(db: Database) -> None:
    calls: list[str] = []

    async def on_release(ctx: MessageContext, message: ReleaseStock) -> None:
        calls.append(message.reason)

    handlers = HandlerMap()
    handlers.register(ReleaseStock, on_release)
    message = ReleaseStock(order_id=uuid4(), reason="r")
    record = SourceRecord(message.topic, 0, 1, message.key.encode(), registry.wrap(message, producer="t").to_bytes())

    def processor(database: Database, dead_letters: RecordingDeadLetters) -> MessageProcessor:
        return MessageProcessor(
            consumer="test",
            producer_name="test",
            db=database,
            registry=registry,
            handlers=handlers,
            dead_letters=dead_letters,
            max_attempts=2,
            retry_backoff_s=0.0,
        )

    down = Database("postgresql+asyncpg://oms:oms@127.0.0.1:1/oms", schema=db.schema)
    dead_letters = RecordingDeadLetters("test")
    try:
        with pytest.raises(DependencyUnavailableError):
            await processor(down, dead_letters).process(record)
    finally:
        await down.dispose()
    assert dead_letters.sent == [], "an outage is not the message's fault"
    assert calls == []
    # The database is back: the redelivered message is processed.
    assert await processor(db, dead_letters).process(record) == Outcome.PROCESSED
    assert calls == ["r"]


async def test_a_handler_failing_on_its_own_dependency_is_dead_lettered_while_the_database_answers(
    db: Database,
) -> None:
    async def on_release(ctx: MessageContext, message: ReleaseStock) -> None:
        raise ConnectionResetError("gateway connection lost")

    handlers = HandlerMap()
    handlers.register(ReleaseStock, on_release)
    dead_letters = RecordingDeadLetters("test")
    processor = MessageProcessor(
        consumer="test",
        producer_name="test",
        db=db,
        registry=registry,
        handlers=handlers,
        dead_letters=dead_letters,
        max_attempts=2,
        retry_backoff_s=0.0,
    )
    message = ReleaseStock(order_id=uuid4(), reason="r")
    record = SourceRecord(message.topic, 0, 1, message.key.encode(), registry.wrap(message, producer="t").to_bytes())
    assert await processor.process(record) == Outcome.DEAD_LETTERED
    [(_, reason)] = dead_letters.sent
    assert "ConnectionResetError: gateway connection lost" in reason
