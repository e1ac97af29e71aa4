"""The dispatcher's rounds on the real PostgreSQL, SMTP server and SMS provider: a round claims its rows and
records their outcomes in a handful of statements, emails share an SMTP connection, rows another worker
holds are skipped, a stop or a crash mid-round loses and doubles nothing, and the consumer's commit wakes
the dispatcher (which does not spin while idle)."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from notification_harness import REGISTRY, Crash, CrashAfterSending, Harness, Statements
from notification_smtp import Smtp
from sqlalchemy import select, update

from notification_service.adapters.tables import deliveries, metadata
from notification_service.testing import LocalSmsProvider
from oms_events.messages import OrderConfirmed, OrderPlaced
from oms_runtime.db import Database
from oms_runtime.messaging import Outcome
from oms_runtime.testing import throwaway_schema

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_notification_dispatch", metadata) as database:
        yield database


def another_order(placed: OrderPlaced) -> OrderPlaced:
    return placed.model_copy(update={"order_id": uuid4(), "external_reference": f"WEB-{uuid4().hex[:6]}"})


# ---------------------------------------------------------------- one round, few statements


async def test_a_round_claims_and_records_many_messages_in_two_transactions(
    harness: Harness, placed: OrderPlaced
) -> None:
    orders = [placed, *(another_order(placed) for _ in range(5))]
    for order in orders:
        await harness.send(order)
    with Statements(harness.db) as db:
        assert await harness.dispatcher().run_once() == 6
    # Claim: one SELECT (rows, contacts, preferences) and one UPDATE; record: one UPDATE, one outbox INSERT.
    assert db.seen == ["SELECT", "UPDATE", "COMMIT", "UPDATE", "INSERT", "COMMIT"]
    for order in orders:
        [mail] = harness.mails(order.order_id)
        assert mail["X-OMS-Notification-Kind"] == "order_received"
        [row] = await harness.rows(order.order_id)
        assert (row["status"], row["attempts"], row["lease_until"]) == ("sent", 1, None)
        assert len(await harness.emitted(order.order_id, "NotificationSent")) == 1


async def test_one_smtp_connection_carries_many_emails(harness: Harness, placed: OrderPlaced) -> None:
    orders = [placed, *(another_order(placed) for _ in range(4))]
    for order in orders:
        await harness.send(order)
        await harness.send(
            OrderConfirmed(order_id=order.order_id, payment_id=uuid4(), amount_minor=5230, currency="EUR")
        )
    await harness.dispatch(harness.dispatcher(concurrency=1))
    assert len(harness.smtp.received) == 10
    assert len(harness.smtp.connections()) == 1, "one connect and EHLO for ten emails"
    for order in orders:
        kinds = [m["X-OMS-Notification-Kind"] for m in harness.mails(order.order_id)]
        assert kinds == ["order_received", "order_confirmation"], "one order's messages in order"


async def test_orders_are_served_side_by_side_on_up_to_concurrency_connections(
    harness: Harness, placed: OrderPlaced
) -> None:
    for order in [placed, *(another_order(placed) for _ in range(7))]:
        await harness.send(order)
    await harness.dispatch(harness.dispatcher(concurrency=3))
    assert len(harness.smtp.received) == 8
    assert 1 <= len(harness.smtp.connections()) <= 3


# ---------------------------------------------------------------- other workers


async def test_rows_another_worker_holds_are_skipped(harness: Harness, placed: OrderPlaced) -> None:
    other = another_order(placed)
    await harness.send(placed)
    await harness.send(other)
    async with harness.db.engine.connect() as conn, conn.begin():
        # Another worker's claim in progress: it holds the rows of the first order locked.
        await conn.execute(select(deliveries).where(deliveries.c.order_id == placed.order_id).with_for_update())
        assert await harness.dispatcher().run_once() == 1
        assert harness.mails(placed.order_id) == []
        assert len(harness.mails(other.order_id)) == 1
    # That transaction ended without taking them: they are due for anyone.
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 1


async def test_an_orders_later_message_waits_while_another_worker_sends_an_earlier_one(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    await harness.send(placed)
    await harness.send(confirmed)
    # Another worker has the first message in hand (sending, its lease running).
    async with harness.db.transaction() as session:
        await session.execute(
            update(deliveries)
            .where(deliveries.c.order_id == placed.order_id, deliveries.c.kind == "order_received")
            .values(status="sending", attempts=1, lease_until=harness.clock() + timedelta(seconds=30))
        )
    await harness.dispatch()
    assert harness.mails(placed.order_id) == [], "not 'confirmed' before 'received'"
    assert (await harness.row(placed.order_id, "order_confirmation", "email"))["status"] == "pending"
    # That worker died: once its lease ends, the first is unconfirmed (it may have gone) and the next goes.
    harness.clock.advance(seconds=31)
    await harness.dispatch()
    assert [m["X-OMS-Notification-Kind"] for m in harness.mails(placed.order_id)] == ["order_confirmation"]
    assert (await harness.row(placed.order_id, "order_received", "email"))["status"] == "unconfirmed"


# ---------------------------------------------------------------- a crash or a stop mid-round


async def test_a_crash_mid_round_leaves_the_unsent_messages_to_go_after_the_lease(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    await harness.send(placed)
    await harness.send(confirmed)
    with pytest.raises(Crash):
        await harness.dispatcher(email_sender=CrashAfterSending(harness.email_sender)).run_once()
    assert len(harness.mails(placed.order_id)) == 1, "the first was handed over, then the process died"
    received = await harness.row(placed.order_id, "order_received", "email")
    confirmation = await harness.row(placed.order_id, "order_confirmation", "email")
    assert received["status"] == "sending"
    assert (confirmation["status"], confirmation["attempts"]) == ("pending", 0), "claimed, never handed over"
    assert confirmation["lease_until"] == harness.clock() + timedelta(seconds=60)
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 1, "nobody touches the round before its lease ends"

    harness.clock.advance(seconds=61)
    await harness.dispatch()
    assert [m["X-OMS-Notification-Kind"] for m in harness.mails(placed.order_id)] == [
        "order_received",
        "order_confirmation",
    ]
    assert (await harness.row(placed.order_id, "order_received", "email"))["status"] == "unconfirmed"
    assert (await harness.row(placed.order_id, "order_confirmation", "email"))["status"] == "sent"


class GatedSender:
    """Holds the first email until released (a slow mail server), then sends as the inner sender."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: Any) -> Any:
        if not self.started.is_set():
            self.started.set()
            await self.release.wait()
        return await self._inner.send(message)


async def test_a_stop_mid_round_finishes_the_message_in_hand_and_gives_back_the_rest(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    await harness.send(placed)
    await harness.send(confirmed)
    gated = GatedSender(harness.email_sender)
    dispatcher = harness.dispatcher(email_sender=gated, poll_interval_s=30)
    await dispatcher.start()
    await asyncio.wait_for(gated.started.wait(), 5)
    stopping = asyncio.create_task(dispatcher.stop())
    await asyncio.sleep(0.05)
    gated.release.set()
    await asyncio.wait_for(stopping, 10)
    assert [m["X-OMS-Notification-Kind"] for m in harness.mails(placed.order_id)] == ["order_received"]
    assert (await harness.row(placed.order_id, "order_received", "email"))["status"] == "sent"
    rest = await harness.row(placed.order_id, "order_confirmation", "email")
    assert (rest["status"], rest["lease_until"], rest["attempts"]) == ("pending", None, 0)
    # Given back: the next process sends it at once, not after the lease.
    await harness.dispatch()
    assert len(harness.mails(placed.order_id)) == 2


# ---------------------------------------------------------------- woken by the consumer, quiet while idle


async def test_the_consumer_wakes_the_dispatcher_once_per_committed_transaction(
    db: Database, smtp: Smtp, provider: LocalSmsProvider, placed: OrderPlaced
) -> None:
    wakes: list[float] = []
    harness = Harness(db, smtp, provider, wake=lambda: wakes.append(time.monotonic()))
    others = [another_order(placed) for _ in range(3)]
    outcomes = await harness.deliver_batch([REGISTRY.wrap(o, producer="order-service") for o in others])
    assert outcomes == [Outcome.PROCESSED] * 3
    assert len(wakes) == 1, "one transaction for the batch, one wake at its commit"

    # A batch whose transaction rolls back (an event of an unknown order fails in it) wakes nobody;
    # its records then run one by one, and only the committed one wakes the dispatcher.
    unknown = OrderConfirmed(order_id=uuid4(), payment_id=uuid4(), amount_minor=1, currency="EUR")
    batch = [REGISTRY.wrap(placed, producer="order-service"), REGISTRY.wrap(unknown, producer="order-service")]
    assert await harness.deliver_batch(batch) == [Outcome.PROCESSED, Outcome.DEAD_LETTERED]
    assert len(wakes) == 2
    # Nothing new (a redelivered event): no wake.
    assert await harness.deliver(batch[0]) is Outcome.DUPLICATE
    assert len(wakes) == 2


async def test_a_running_dispatcher_sends_right_after_the_consumer_commits(
    db: Database, smtp: Smtp, provider: LocalSmsProvider, placed: OrderPlaced
) -> None:
    woken: list[Any] = []
    harness = Harness(db, smtp, provider, wake=lambda: woken[0].wake())
    dispatcher = harness.dispatcher(poll_interval_s=60)
    woken.append(dispatcher)
    await dispatcher.start()
    try:
        await asyncio.sleep(0.2)  # its first round found nothing; the next poll is a minute away
        started = time.monotonic()
        await harness.send(placed)
        assert await asyncio.to_thread(smtp.handler.wait_for_messages, 1, 10), "sent long before the next poll"
        assert time.monotonic() - started < 5
    finally:
        await dispatcher.stop()


async def test_an_idle_dispatcher_looks_once_per_poll_interval(harness: Harness) -> None:
    dispatcher = harness.dispatcher(poll_interval_s=0.1)
    with Statements(harness.db) as db:
        await dispatcher.start()
        await asyncio.sleep(1.0)
        await dispatcher.stop()
    looks = db.seen.count("SELECT")
    assert 2 <= looks <= 13, f"{looks} rounds in a second at a 0.1 s interval: no spinning"
