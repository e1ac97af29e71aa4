"""The runtime's statements sent straight to asyncpg run inside the session's transaction, not beside it.

SQLAlchemy's asyncpg adapter sends BEGIN at the first statement it runs itself; `fetch_in_transaction`
must do the same when it comes first, or the inbox, outbox and event rows would commit on their own.
"""

from uuid import uuid4

import pytest
from sqlalchemy import text

from oms_events import Envelope, default_registry
from oms_events.messages import ReleaseStock
from oms_runtime.db import Database
from oms_runtime.driver import fetch_in_transaction, listen_to_driver_statements
from oms_runtime.eventstore import ConcurrencyError, EventStore
from oms_runtime.inbox import Inbox
from oms_runtime.outbox import Outbox

registry = default_registry()


def envelope(reason: str = "r") -> Envelope:
    return registry.wrap(ReleaseStock(order_id=uuid4(), reason=reason), producer="test")


async def count(db: Database, table: str) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


async def test_a_driver_statement_first_in_a_transaction_rolls_back_with_it(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            assert await Inbox().record(session, "c", envelope())
            await EventStore().append(session, "s-1", "Test", 0, [envelope()])
            raise RuntimeError("the handler failed")
    assert await count(db, "inbox") == 0
    assert await count(db, "events") == 0


async def test_driver_and_sqlalchemy_statements_share_one_transaction(db: Database) -> None:
    async with db.transaction() as session:
        await Inbox().record(session, "c", envelope())
        await session.execute(text("SELECT 1"))
        await EventStore().append(session, "s-1", "Test", 0, [envelope()])
        own = await fetch_in_transaction(session, "SELECT pg_current_xact_id()::text")
        shared = await session.scalar(text("SELECT pg_current_xact_id()::text"))
    assert own[0][0] == shared
    async with db.transaction() as session:
        writers = await session.scalar(
            text("SELECT count(DISTINCT xmin::text) FROM (SELECT xmin FROM inbox UNION ALL SELECT xmin FROM events) t")
        )
    assert writers == 1


async def test_a_session_that_commits_and_goes_on_runs_its_next_statements_in_the_next_transaction(
    db: Database,
) -> None:
    # The driver keeps the connection of a transaction (asked of SQLAlchemy once per transaction): after a
    # commit the session's next transaction may be on another connection, and its statements must be in it.
    async with db.sessions() as session, db.sessions() as other:
        first = (await fetch_in_transaction(session, "SELECT pg_current_xact_id()::text, pg_backend_pid()"))[0]
        await session.commit()
        # Another session takes the connection the first transaction gave back.
        assert await other.scalar(text("SELECT pg_backend_pid()")) == first[1]
        second = (await fetch_in_transaction(session, "SELECT pg_current_xact_id()::text, pg_backend_pid()"))[0]
        assert second[1] != first[1], "the session's next transaction is on another connection"
        assert second[0] == await session.scalar(text("SELECT pg_current_xact_id()::text"))
        await EventStore().append(session, "s-2", "Test", 0, [envelope()])
        await session.rollback()
    assert await count(db, "events") == 0, "the append rolled back with the second transaction"


async def test_outbox_ids_follow_the_order_messages_were_queued(db: Database) -> None:
    queued = [envelope(f"m{i}") for i in range(300)]
    async with db.transaction() as session:
        for e in queued:
            await Outbox().add(session, "oms.test", "k", e)
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT event_id, headers FROM outbox ORDER BY id"))).all()
    assert [r[0] for r in rows] == [e.event_id for e in queued]
    assert rows[0][1]["type"] == "ReleaseStock"


async def test_a_lost_race_on_the_driver_path_is_a_concurrency_error(db: Database) -> None:
    store = EventStore()
    async with db.transaction() as session:
        await store.append(session, "s-1", "Test", 0, [envelope()])
    with pytest.raises(ConcurrencyError):
        async with db.transaction() as session:
            await store.append(session, "s-1", "Test", 0, [envelope()])
    async with db.transaction() as session:
        assert await store.current_version(session, "s-1") == 1


async def test_listeners_see_every_driver_statement(db: Database) -> None:
    seen: list[str] = []
    stop = listen_to_driver_statements(seen.append)
    try:
        async with db.transaction() as session:
            await Inbox().record(session, "c", envelope())
            await Outbox().add(session, "oms.test", "k", envelope())
    finally:
        stop()
    assert [("inbox" in s, "outbox" in s) for s in seen] == [(True, False), (False, True)]
    async with db.transaction() as session:
        await Inbox().record(session, "c", envelope())
    assert len(seen) == 2
