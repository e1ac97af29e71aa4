"""A polled batch commits in one transaction, and a failure in it changes nothing for the others.

The real PostgreSQL: `xmin` says which transaction wrote a row, so "one transaction per batch" is
checked on the rows themselves, not on a count of calls.
"""

import json
from uuid import UUID, uuid4

from sqlalchemy import text

from oms_events import default_registry, topics
from oms_events.messages import ReleaseStock
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.messaging import HandlerMap, MessageContext, MessageProcessor, Outcome, SourceRecord
from oms_runtime.testing import RecordingDeadLetters

registry = default_registry()
store = EventStore()


class Releases:
    """Handles ReleaseStock: appends to the order's stream at the version it reads, emits one message.

    A reason starting with "fail" raises, as a handler whose message is bad would."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, ctx: MessageContext, message: ReleaseStock) -> None:
        self.calls.append(message.reason)
        if message.reason.startswith("fail"):
            raise ValueError(f"cannot release for {message.reason}")
        stream = f"order-{message.order_id}"
        version = await store.current_version(ctx.session, stream)
        await ctx.record(store, stream, "Order", version, [ReleaseStock(order_id=message.order_id, reason="again")])
        await ctx.emit(ReleaseStock(order_id=message.order_id, reason=f"answer to {message.reason}"))


def make_processor(db: Database) -> tuple[MessageProcessor, Releases, RecordingDeadLetters]:
    releases = Releases()
    handlers = HandlerMap()
    handlers.register(ReleaseStock, releases)
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
    return processor, releases, dead_letters


def records(order_id: UUID, reasons: list[str]) -> list[SourceRecord]:
    return [
        SourceRecord(
            topic="oms.test",
            partition=0,
            offset=i,
            key=str(order_id).encode(),
            value=registry.wrap(ReleaseStock(order_id=order_id, reason=reason), producer="t").to_bytes(),
        )
        for i, reason in enumerate(reasons)
    ]


async def writers(db: Database, table: str) -> int:
    """How many transactions wrote the table's rows."""
    async with db.transaction() as session:
        return int(await session.scalar(text(f"SELECT count(DISTINCT xmin::text) FROM {table}")) or 0)


async def outbox_reasons(db: Database) -> list[str]:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT value FROM outbox ORDER BY id"))
        return [json.loads(v)["payload"]["reason"] for (v,) in rows.all()]


async def test_a_batch_commits_its_inbox_events_and_outbox_in_one_transaction(db: Database) -> None:
    processor, releases, _ = make_processor(db)
    order_id = uuid4()
    batch = records(order_id, [f"r{i}" for i in range(10)])

    assert await processor.process_batch(batch) == [Outcome.PROCESSED] * 10

    assert releases.calls == [f"r{i}" for i in range(10)]
    assert await outbox_reasons(db) == [
        reason for i in range(10) for reason in ("again", f"answer to r{i}")
    ]  # each handler's messages, in the records' order
    for table in ("inbox", "events", "outbox"):
        assert await writers(db, table) == 1, table
    # Each handler saw the stream as the one before left it: versions 1..10, no conflict.
    async with db.transaction() as session:
        assert await store.current_version(session, f"order-{order_id}") == 10


async def test_a_message_twice_in_a_batch_or_again_later_takes_effect_once(db: Database) -> None:
    processor, releases, _ = make_processor(db)
    first, second = records(uuid4(), ["a", "b"])

    assert await processor.process_batch([first, second, first]) == [
        Outcome.PROCESSED,
        Outcome.PROCESSED,
        Outcome.DUPLICATE,
    ]
    assert await processor.process_batch([second, first]) == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert releases.calls == ["a", "b"]
    assert await outbox_reasons(db) == ["again", "answer to a", "again", "answer to b"]


async def test_a_failing_message_is_dead_lettered_alone_and_the_rest_of_its_batch_takes_effect(db: Database) -> None:
    processor, releases, dead_letters = make_processor(db)
    batch = records(uuid4(), ["ok1", "fail-me", "ok2"])

    assert await processor.process_batch(batch) == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]

    assert [(r.offset, reason.split(":")[0]) for r, reason in dead_letters.sent] == [
        (1, "handler failed after 2 attempts")
    ]
    assert await outbox_reasons(db) == ["again", "answer to ok1", "again", "answer to ok2"]
    # The batch's transaction rolled back; then one transaction per record (nothing half-written).
    assert await writers(db, "outbox") == 2
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT message_id, message_type FROM inbox"))).all()
    inbox = {message_id for message_id, kind in rows if kind != "dead-lettered record"}
    assert inbox == {registry.parse_envelope(batch[i].value).event_id for i in (0, 2)}
    assert [kind for _, kind in rows].count("dead-lettered record") == 1  # fail-me's place
    # The batch once together (ok1, fail-me), then each record on its own, fail-me twice (its attempts).
    assert releases.calls == ["ok1", "fail-me", "ok1", "fail-me", "fail-me", "ok2"]


async def test_poison_in_a_batch_goes_to_the_dead_letters_and_the_others_commit_together(db: Database) -> None:
    processor, _, dead_letters = make_processor(db)
    good = records(uuid4(), ["x", "y"])
    poison = SourceRecord(topic="oms.test", partition=0, offset=7, key=None, value=b"{not json")

    assert await processor.process_batch([good[0], poison, good[1]]) == [
        Outcome.PROCESSED,
        Outcome.DEAD_LETTERED,
        Outcome.PROCESSED,
    ]
    assert [r.offset for r, _ in dead_letters.sent] == [7]
    assert await writers(db, "outbox") == 1


def with_type_header(record: SourceRecord, message_type: str, topic: str = "oms.test") -> SourceRecord:
    return SourceRecord(
        topic=topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=(("type", message_type.encode()),),
    )


async def test_a_record_whose_type_header_names_an_unhandled_type_is_skipped_without_reading_it(
    db: Database,
) -> None:
    processor, releases, dead_letters = make_processor(db)
    unreadable = SourceRecord(topic="oms.test", partition=0, offset=0, key=b"k", value=b"not json at all")
    handled = records(uuid4(), ["ok"])[0]

    outcomes = await processor.process_batch(
        [
            with_type_header(unreadable, "OrderPlaced"),  # known, not handled here: never parsed
            with_type_header(handled, "ReleaseStock"),  # handled: parsed and processed
            with_type_header(handled, "NoSuchType"),  # unknown to the contract: parsed, as without a header
        ]
    )

    assert outcomes == [Outcome.SKIPPED, Outcome.PROCESSED, Outcome.DUPLICATE]
    assert releases.calls == ["ok"]
    assert dead_letters.sent == []


async def test_on_an_upstream_topic_the_type_header_is_not_trusted(db: Database) -> None:
    # Upstream systems write the intake topic: a header saying "a type you ignore" must not make a
    # consumer drop what the value really is.
    processor, releases, dead_letters = make_processor(db)
    disguised = with_type_header(records(uuid4(), ["real"])[0], "OrderPlaced", topic=topics.ORDERS_INTAKE)
    poison = with_type_header(
        SourceRecord(topic=topics.ORDERS_INTAKE, partition=0, offset=1, key=b"k", value=b"{"),
        "OrderPlaced",
        topic=topics.ORDERS_INTAKE,
    )

    assert await processor.process_batch([disguised, poison]) == [Outcome.PROCESSED, Outcome.DEAD_LETTERED]
    assert releases.calls == ["real"]
    assert len(dead_letters.sent) == 1


async def test_a_poison_record_read_again_after_a_crash_is_dead_lettered_once(db: Database) -> None:
    # The dead letter was sent, then the process died before the offset commit: the record comes again.
    poison = SourceRecord(topic="oms.test", partition=2, offset=7, key=b"k", value=b"{broken")
    first, _, first_letters = make_processor(db)
    assert await first.process_batch([poison]) == [Outcome.DEAD_LETTERED]
    restarted, _, letters_after_restart = make_processor(db)

    assert await restarted.process_batch([poison]) == [Outcome.DEAD_LETTERED]

    assert len(first_letters.sent) == 1
    assert letters_after_restart.sent == []  # already in the dead-letter topic: not sent again
    # The same bytes published anew (another offset) are another record: dead-lettered too.
    copy = SourceRecord(topic="oms.test", partition=2, offset=8, key=b"k", value=b"{broken")
    assert await restarted.process_batch([copy]) == [Outcome.DEAD_LETTERED]
    assert len(letters_after_restart.sent) == 1
