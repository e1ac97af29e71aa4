"""Use cases that no message caused: one transaction each, the outbox, retried when they lost a race."""

from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from oms_events import default_registry
from oms_events.messages import ReleaseStock
from oms_runtime.db import Database
from oms_runtime.eventstore import ConcurrencyError
from oms_runtime.messaging import MessageContext
from oms_runtime.use_cases import UseCaseRunner, local_context, lost_a_race

registry = default_registry()


class Relay:
    """Stands in for the outbox relay: what each committed transaction handed over."""

    def __init__(self, db: Database) -> None:
        self.handed: list[list[str]] = []
        db.set_outbox_listener(lambda rows: self.handed.append([r.event_type for r in rows]))


async def _outbox_rows(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(text("SELECT count(*) FROM outbox")) or 0)


async def test_local_context_emits_with_no_cause_under_the_service_name(db: Database) -> None:
    async with db.transaction() as session:
        ctx = local_context(session, "svc", registry)
        envelope = await ctx.emit(ReleaseStock(order_id=uuid4(), reason="test"))
    assert ctx.envelope is None
    assert envelope.producer == "svc"
    assert envelope.causation_id is None
    assert await _outbox_rows(db) == 1


async def test_a_use_case_commits_its_messages_and_hands_them_to_the_relay(db: Database) -> None:
    relay = Relay(db)
    runner = UseCaseRunner(db, registry, "svc")

    async def release(ctx: MessageContext) -> str:
        await ctx.emit(ReleaseStock(order_id=uuid4(), reason="test"))
        return "done"

    assert await runner.run(release) == "done"
    assert relay.handed == [["ReleaseStock"]]
    assert await _outbox_rows(db) == 1


async def test_a_use_case_that_emits_nothing_hands_nothing_to_the_relay(db: Database) -> None:
    relay = Relay(db)
    runner = UseCaseRunner(db, registry, "svc")

    async def nothing(ctx: MessageContext) -> None:
        return None

    await runner.run(nothing)
    assert relay.handed == []


async def test_a_lost_race_is_run_again_in_a_new_transaction(db: Database) -> None:
    relay = Relay(db)
    runner = UseCaseRunner(db, registry, "svc")
    attempts: list[MessageContext] = []

    async def contended(ctx: MessageContext) -> int:
        attempts.append(ctx)
        await ctx.emit(ReleaseStock(order_id=uuid4(), reason=f"attempt {len(attempts)}"))
        if len(attempts) < 3:
            raise ConcurrencyError("order-1", 3)
        return len(attempts)

    assert await runner.run(contended) == 3
    assert len({id(ctx.session) for ctx in attempts}) == 3
    assert await _outbox_rows(db) == 1  # the failed attempts' messages rolled back with them
    assert relay.handed == [["ReleaseStock"]]


async def test_the_last_attempt_s_failure_goes_to_the_caller(db: Database) -> None:
    runner = UseCaseRunner(db, registry, "svc", attempts=2)
    attempts = 0

    async def always_contended(ctx: MessageContext) -> None:
        nonlocal attempts
        attempts += 1
        raise ConcurrencyError("order-1", 3)

    with pytest.raises(ConcurrencyError):
        await runner.run(always_contended)
    assert attempts == 2


async def test_other_failures_are_not_retried_and_roll_back(db: Database) -> None:
    relay = Relay(db)
    runner = UseCaseRunner(db, registry, "svc")
    attempts = 0

    async def refused(ctx: MessageContext) -> None:
        nonlocal attempts
        attempts += 1
        await ctx.emit(ReleaseStock(order_id=uuid4(), reason="test"))
        raise LookupError("no such order")

    with pytest.raises(LookupError):
        await runner.run(refused)
    assert attempts == 1
    assert relay.handed == []
    assert await _outbox_rows(db) == 0


async def test_the_service_says_which_failures_are_worth_another_attempt(db: Database) -> None:
    def worth_it(exc: Exception) -> bool:
        return lost_a_race(exc) or isinstance(exc, IntegrityError)

    runner = UseCaseRunner(db, registry, "svc", retry_on=worth_it)
    attempts = 0

    async def collides_once(ctx: MessageContext) -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return attempts

    assert await runner.run(collides_once) == 2
