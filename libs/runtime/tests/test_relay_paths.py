"""The relay publishes at commit, in commit order, keeps that order through broker failures and a
restart, and never publishes a row twice while the broker answers.

A producer stand-in that records (and fails when told to) takes Kafka's place; the relay's table work
runs on the real PostgreSQL. The real broker path is in test_runtime_store.
"""

import asyncio
import json
from typing import Any
from uuid import uuid4

from sqlalchemy import text

from oms_events import default_registry
from oms_events.messages import ReleaseStock
from oms_events.topics import INVENTORY_COMMANDS
from oms_runtime.db import Database
from oms_runtime.outbox import Outbox
from oms_runtime.relay import OutboxRelay

registry = default_registry()
outbox = Outbox()


class BrokerStandIn:
    """Records what it is sent; refuses sends while `down` is set."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.down = False
        self.refused = 0

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> "asyncio.Future[Any]":
        if self.down:
            self.refused += 1
            raise ConnectionError("broker away")
        self.sent.append(json.loads(value)["payload"]["reason"])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def commit(db: Database, *reasons: str) -> None:
    order_id = uuid4()
    async with db.transaction() as session:
        for reason in reasons:
            envelope = registry.wrap(ReleaseStock(order_id=order_id, reason=reason), producer="t")
            await outbox.add(session, INVENTORY_COMMANDS, str(order_id), envelope)


async def unpublished(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) or 0)


async def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def relay_for(db: Database, broker: BrokerStandIn, **kwargs: Any) -> OutboxRelay:
    # A sweep that never comes within a test: what is published here went by the commit path.
    relay = OutboxRelay(db, broker, sweep_interval_s=3600, **kwargs)
    relay._retry_pause_s = 0.01
    return relay


async def test_rows_are_published_at_commit_in_commit_order_and_marked(db: Database) -> None:
    broker = BrokerStandIn()
    relay = relay_for(db, broker)
    await relay.start()
    try:
        for i in range(20):
            await commit(db, f"m{i}a", f"m{i}b")
        await wait_for(lambda: len(broker.sent) == 40)
    finally:
        await relay.stop()
    assert broker.sent == [f"m{i}{x}" for i in range(20) for x in "ab"]
    assert await unpublished(db) == 0


async def test_rows_left_by_an_earlier_process_go_out_first_at_start(db: Database) -> None:
    await commit(db, "left1", "left2")  # no relay listening: as if the process died after the commit
    broker = BrokerStandIn()
    relay = relay_for(db, broker)
    await relay.start()
    try:
        await commit(db, "new1")
        await wait_for(lambda: len(broker.sent) == 3)
        await asyncio.sleep(0.1)
    finally:
        await relay.stop()
    assert broker.sent == ["left1", "left2", "new1"]
    assert await unpublished(db) == 0


async def test_a_failed_publish_is_retried_before_anything_committed_after_it(db: Database) -> None:
    broker = BrokerStandIn()
    relay = relay_for(db, broker)
    await relay.start()
    try:
        await commit(db, "before")
        await wait_for(lambda: len(broker.sent) == 1)
        broker.down = True
        await commit(db, "during1")
        await wait_for(lambda: broker.refused >= 2)
        await commit(db, "during2")
        broker.down = False
        await wait_for(lambda: len(broker.sent) == 3)
        await commit(db, "after")
        await wait_for(lambda: len(broker.sent) == 4)
    finally:
        await relay.stop()
    assert broker.sent == ["before", "during1", "during2", "after"]
    assert await unpublished(db) == 0


async def test_a_long_outage_lets_go_of_memory_and_catches_up_from_the_table_in_order(db: Database) -> None:
    broker = BrokerStandIn()
    relay = relay_for(db, broker, max_queued=3)
    await relay.start()
    try:
        await wait_for(lambda: not relay._catching_up)
        broker.down = True
        for i in range(6):
            await commit(db, f"o{i}")
        await wait_for(lambda: relay._catching_up)  # more than max_queued waited: the table took over
        broker.down = False
        await commit(db, "later")
        await wait_for(lambda: len(broker.sent) == 7)
        await asyncio.sleep(0.1)
    finally:
        await relay.stop()
    assert broker.sent == [f"o{i}" for i in range(6)] + ["later"]
    assert await unpublished(db) == 0


async def test_stop_leaves_what_the_broker_refused_in_the_table(db: Database) -> None:
    broker = BrokerStandIn()
    relay = relay_for(db, broker)
    await relay.start()
    await wait_for(lambda: not relay._catching_up)
    broker.down = True
    await commit(db, "refused")
    await wait_for(lambda: broker.refused >= 1)
    await relay.stop()
    assert broker.sent == []
    assert await unpublished(db) == 1


async def test_what_is_published_in_a_pause_is_marked_in_one_update(db: Database) -> None:
    broker = BrokerStandIn()
    relay = relay_for(db, broker, mark_pause_s=0.5)
    await relay.start()
    try:
        for i in range(20):
            await commit(db, f"m{i}")
        await wait_for(lambda: len(broker.sent) == 20)
        for _ in range(500):  # the UPDATE comes after the pause
            if await unpublished(db) == 0:
                break
            await asyncio.sleep(0.01)
        async with db.transaction() as session:
            # An UPDATE gives each row it changes the updating transaction's id.
            markers = await session.scalar(text("SELECT count(DISTINCT xmin::text) FROM outbox"))
        assert markers is not None
        assert markers <= 3
        assert await unpublished(db) == 0
        await commit(db, "last")
        await wait_for(lambda: len(broker.sent) == 21)
    finally:
        await relay.stop()  # marks what the pause had not marked yet
    assert await unpublished(db) == 0
