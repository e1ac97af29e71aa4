"""How many statements the consumer runs per polled batch, pinned; and that a batch written at its commit
keeps what its events one by one would.

The consumer's happy path is one transaction per polled batch (the runtime's), and in it: the runtime's
inbox INSERT, then at the commit notification-service's two statements for the whole batch (contacts
stored and read with preferences, one CTE; the send-log rows, one INSERT), however many events and
orders the batch holds. Written per event, as before, it was two statements per event (six per order on
the bench's happy path); a change that adds a statement per event, or per batch, fails here. Counted
with a `before_cursor_execute` listener on the real PostgreSQL, the events going through the runtime's
message processor as the service's consumer runs them.
"""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import pytest_asyncio
from notification_harness import REGISTRY, Harness, Statements

from notification_service.adapters.tables import metadata
from oms_events import Envelope, Message
from oms_events.messages import OrderConfirmed, OrderPaymentDeclined, OrderPlaced, OrderRejected, OrderShipped
from oms_runtime.db import Database
from oms_runtime.messaging import Outcome
from oms_runtime.testing import throwaway_schema

pytestmark = pytest.mark.integration

# The runtime's statement, then ours: the CTE (contacts), the send-log rows; one commit.
ONE_BATCH = ["INSERT", "WITH", "INSERT", "COMMIT"]


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_notification_statements", metadata) as database:
        yield database


def wrap(message: Message) -> Envelope:
    return REGISTRY.wrap(message, producer="order-service")


def orders(placed: OrderPlaced, count: int) -> list[OrderPlaced]:
    return [
        placed.model_copy(update={"order_id": uuid4(), "external_reference": f"WEB-{uuid4().hex[:6]}"})
        for _ in range(count)
    ]


def confirmed(order: OrderPlaced) -> OrderConfirmed:
    return OrderConfirmed(order_id=order.order_id, payment_id=uuid4(), amount_minor=5230, currency="EUR")


def shipped_of(order: OrderPlaced, shipped: OrderShipped) -> OrderShipped:
    return shipped.model_copy(update={"order_id": order.order_id, "shipment_id": uuid4()})


async def test_one_event_costs_the_inbox_row_and_two_statements(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    with Statements(harness.db) as placing:
        await harness.send(placed)
    assert placing.seen == ONE_BATCH
    with Statements(harness.db) as shipping:
        await harness.send(shipped)
    assert shipping.seen == ONE_BATCH, "email and SMS rows in one INSERT"
    assert "inbox" in shipping.texts[0]
    assert "order_contacts" in shipping.texts[1]
    assert "customer_preferences" in shipping.texts[1]
    assert "deliveries" in shipping.texts[2]
    assert not placing.through_sqlalchemy + shipping.through_sqlalchemy, "all of them straight to asyncpg"


async def test_a_batch_of_many_orders_events_costs_what_one_event_costs(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    five = orders(placed, 5)
    # Each order's whole happy path in one polled batch: placed, confirmed, shipped (contacts stored
    # and read back by the same statement, the later events finding the contact stored just before).
    batch = [wrap(m) for order in five for m in (order, confirmed(order), shipped_of(order, shipped))]
    with Statements(harness.db) as db:
        outcomes = await harness.deliver_batch(batch)
    assert outcomes == [Outcome.PROCESSED] * 15
    assert db.seen == ONE_BATCH
    for order in five:
        rows = await harness.rows(order.order_id)
        assert [(r["kind"], r["channel"], r["status"]) for r in rows] == [
            ("order_received", "email", "pending"),
            ("order_confirmation", "email", "pending"),
            ("order_shipped", "email", "pending"),
            ("order_shipped", "sms", "pending"),
        ], "the rows of every event, in the events' order"

    # Later events of orders placed in earlier batches: the same two statements.
    later = [wrap(shipped_of(order, shipped)) for order in five]
    with Statements(harness.db) as db:
        assert await harness.deliver_batch(later) == [Outcome.PROCESSED] * 5
    assert db.seen == ONE_BATCH
    assert [len(await harness.rows(order.order_id)) for order in five] == [6] * 5, "a second parcel each"


async def test_a_redelivered_batch_costs_the_inbox_statement_only(harness: Harness, placed: OrderPlaced) -> None:
    batch = [wrap(order) for order in orders(placed, 3)]
    assert await harness.deliver_batch(batch) == [Outcome.PROCESSED] * 3
    with Statements(harness.db) as db:
        assert await harness.deliver_batch(batch) == [Outcome.DUPLICATE] * 3
    assert db.seen == ["INSERT", "COMMIT"]


async def test_a_batch_keeps_what_events_one_by_one_would(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped, payment_declined: OrderPaymentDeclined
) -> None:
    """Within one batch: the same fact twice (a new event id) is told once, a rejection after a declined
    payment not at all, an order's contact is the first OrderPlaced's, and an event of an unknown order
    fails alone (the batch runs again one by one; the others take effect)."""
    again = placed.model_copy(update={"customer": placed.customer.model_copy(update={"name": "Someone Else"})})
    rejected = OrderRejected(order_id=placed.order_id, reason_code="payment_declined", reason="The card was declined.")
    unknown = OrderConfirmed(order_id=uuid4(), payment_id=uuid4(), amount_minor=1, currency="EUR")
    batch = [wrap(m) for m in (placed, again, shipped, shipped, payment_declined, rejected)]
    assert await harness.deliver_batch(batch) == [Outcome.PROCESSED] * 6
    rows = await harness.rows(placed.order_id)
    assert sorted((r["kind"], r["channel"]) for r in rows) == [
        ("order_received", "email"),
        ("order_shipped", "email"),
        ("order_shipped", "sms"),
        ("payment_failed", "email"),
        ("payment_failed", "sms"),
    ]
    contact = await harness.repository_contact(placed.order_id)
    assert contact is not None
    assert contact.name == placed.customer.name

    second = orders(placed, 1)[0]
    outcomes = await harness.deliver_batch([wrap(second), wrap(unknown), wrap(confirmed(second))])
    assert outcomes == [Outcome.PROCESSED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert [r["kind"] for r in await harness.rows(second.order_id)] == ["order_received", "order_confirmation"]
    [(_, reason)] = harness.dead_letters.sent
    assert "OrderPlaced was not seen" in reason


async def test_a_delivery_report_costs_one_statement(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    """One per SMS: the provider reports each one delivered through the webhook."""
    await harness.send(placed)
    await harness.send(shipped)
    dispatcher = harness.dispatcher()
    await harness.dispatch(dispatcher)
    sms = (await harness.row(placed.order_id, "order_shipped", "sms"))["provider_message_id"]
    with Statements(harness.db) as db:
        row = await dispatcher.record_sms_report(sms, delivered=True, error_code=None)
    assert db.seen == ["UPDATE", "COMMIT"]
    assert not db.through_sqlalchemy
    assert row is not None
    assert (row.status, row.delivered_at, row.kind) == ("delivered", harness.clock(), "order_shipped")
    # Reported again (providers repeat reports): nothing changes, and it says so.
    again = await dispatcher.record_sms_report(sms, delivered=True, error_code=None)
    assert again is not None
    assert again.status == "delivered"


async def test_a_round_of_many_orders_costs_a_claim_and_an_update_then_an_update_per_step(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    """The dispatcher's round: the due rows claimed with their contacts and preferences (one SELECT) and
    marked (one UPDATE), in one transaction; then per step (the k-th message of every order), the outcomes
    recorded in one UPDATE with the outbox's one INSERT (NotificationSent). Straight to asyncpg."""
    three = orders(placed, 3)
    assert (
        await harness.deliver_batch([wrap(m) for o in three for m in (o, shipped_of(o, shipped))])
        == [Outcome.PROCESSED] * 6
    )
    dispatcher = harness.dispatcher()
    with Statements(harness.db) as db:
        claimed = await dispatcher.run_once()
    # Per order: the order_received email, the order_shipped email and SMS, one after the other.
    assert claimed >= 9
    # (Rows earlier tests of the module left due are in the round too: an order's line may be longer.)
    steps = (len(db.seen) - 3) // 3
    assert steps >= 3
    assert db.seen == ["SELECT", "UPDATE", "COMMIT"] + steps * ["UPDATE", "INSERT", "COMMIT"]
    assert not db.through_sqlalchemy
    for order in three:
        assert {r["status"] for r in await harness.rows(order.order_id)} == {"sent"}
