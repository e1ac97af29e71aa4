"""How many database statements payment-service runs per order on the happy path, pinned.

A statement costs about a millisecond all in (SQLAlchemy, asyncpg, a round trip, PostgreSQL), which made
statements most of payment-service's CPU per order; these counts are its budget, so a change that adds
one fails here. Counted with a `before_cursor_execute` listener on the real PostgreSQL, the capture
driven through the runtime's processor with the simulated gateway (whose ledger, like an external
system's, commits in its own transactions). The runtime's own statements (inbox, outbox) are counted
apart.

Before this budget, a capture cost 11 statements in 3 transactions (the stream read, 2 to authorise,
4 to capture, the events and the movement apart, the inbox and the outbox); now 8 in 2: the
authorisation is one INSERT in autocommit, the capture 3, and the events and the movement one. Every
one of them goes straight to asyncpg (`oms_runtime.driver.fetch_in_transaction`: about 0.1 ms of Python
against 0.5 ms through SQLAlchemy), which `through_sqlalchemy() == []` pins.
"""

import re
from uuid import uuid4

import pytest
from sqlalchemy import select

from oms_events import default_registry
from oms_events.messages import CapturePayment, PaymentAuthorised, PaymentCaptured, PaymentRefunded, RefundPayment
from oms_runtime.db import Database
from oms_runtime.eventstore import ConcurrencyError
from oms_runtime.messaging import Outcome
from oms_runtime.testing import HandlerHarness, StatementCounter
from oms_runtime.use_cases import local_context
from payment_service.adapters.payment_store import PaymentStore
from payment_service.adapters.simulated_gateway import SimulatedGateway
from payment_service.adapters.tables import payment_movements
from payment_service.domain.payment import payment_id_for
from payment_service.handlers import PaymentHandlers

REGISTRY = default_registry()
TABLES = re.compile(r"\b(events|payment_movements|simgw_operations)\b")


class Statements(StatementCounter):
    """The statements the engine sends, payment-service's apart from the runtime's (inbox, outbox)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, TABLES)


def harness(db: Database) -> HandlerHarness:
    handlers = PaymentHandlers(SimulatedGateway(db), PaymentStore())
    return HandlerHarness(db, "payment-service", handlers.handler_map(), REGISTRY)


async def test_a_capture_is_six_statements_and_the_runtimes_two_in_two_transactions(db: Database) -> None:
    payments = harness(db)
    order_id = uuid4()
    statements = Statements(db)
    with statements.counting():
        outcome = await payments.send(
            CapturePayment(
                order_id=order_id,
                customer_id="c-1",
                amount_minor=12_990,
                currency="EUR",
                payment_token="tok_approve",
                channel="web",
            )
        )
    assert outcome is Outcome.PROCESSED
    assert statements.tables() == [
        {"events"},  # the payment's stream
        {"simgw_operations"},  # the authorisation, one INSERT in autocommit
        {"simgw_operations"},  # the capture: its key's earlier answer and the authorisation, locked
        {"simgw_operations"},  # what was done to the authorisation so far, read after the lock
        {"simgw_operations"},  # the capture recorded
        {"events", "payment_movements"},  # PaymentAuthorised, PaymentCaptured and the captured movement
    ]
    assert (len(statements.runtime), statements.transactions) == (2, 2), (
        "inbox and outbox; the handler's and the capture's"
    )
    assert statements.through_sqlalchemy() == []

    authorised, captured = await payments.emitted(order_id)
    assert isinstance(authorised, PaymentAuthorised)
    assert isinstance(captured, PaymentCaptured)
    async with db.transaction() as session:
        movements = (
            await session.execute(
                select(payment_movements.c.kind, payment_movements.c.amount_minor, payment_movements.c.channel).where(
                    payment_movements.c.order_id == order_id
                )
            )
        ).all()
    assert [tuple(m) for m in movements] == [("captured", 12_990, "web")]
    assert await payments.stream_length(f"payment-{order_id}") == 2


async def test_a_resent_capture_is_one_read_and_charges_nothing(db: Database) -> None:
    payments = harness(db)
    order_id = uuid4()
    command = CapturePayment(
        order_id=order_id, customer_id="c-1", amount_minor=500, currency="EUR", payment_token="tok_approve"
    )
    assert await payments.send(command) is Outcome.PROCESSED
    statements = Statements(db)
    with statements.counting():
        assert await payments.send(command.model_copy()) is Outcome.PROCESSED
    assert statements.tables() == [{"events"}], "the stream says it was captured: answered again from it"
    assert statements.through_sqlalchemy() == []
    assert [type(m) for m in await payments.emitted(order_id)] == [PaymentAuthorised, PaymentCaptured, PaymentCaptured]


async def test_a_refund_is_the_stream_three_gateway_statements_and_one_write(db: Database) -> None:
    payments = harness(db)
    order_id = uuid4()
    await payments.send(
        CapturePayment(
            order_id=order_id, customer_id="c-1", amount_minor=500, currency="EUR", payment_token="tok_approve"
        )
    )
    statements = Statements(db)
    with statements.counting():
        outcome = await payments.send(
            RefundPayment(
                order_id=order_id,
                payment_id=payment_id_for(order_id),
                amount_minor=200,
                currency="EUR",
                reason="returned",
            )
        )
    assert outcome is Outcome.PROCESSED
    assert statements.tables() == [
        {"events"},
        {"simgw_operations"},
        {"simgw_operations"},
        {"simgw_operations"},
        {"events", "payment_movements"},
    ]
    assert statements.through_sqlalchemy() == []


async def test_events_at_a_version_another_transaction_took_raise_concurrency_error(db: Database) -> None:
    """The stream's optimistic concurrency in the one write: a decision on a stale stream records nothing."""
    payments = harness(db)
    order_id = uuid4()
    assert (
        await payments.send(
            CapturePayment(
                order_id=order_id, customer_id="c-1", amount_minor=500, currency="EUR", payment_token="tok_approve"
            )
        )
        is Outcome.PROCESSED
    )
    store = PaymentStore()
    stale = payment_id_for(order_id)
    with pytest.raises(ConcurrencyError):
        async with db.transaction() as session:
            ctx = local_context(session, "payment-service", REGISTRY)
            refund = PaymentRefunded(
                order_id=order_id, payment_id=stale, refund_id=uuid4(), amount_minor=100, currency="EUR"
            )
            await store.record(ctx, order_id, 1, [refund], "web")  # version 2 is PaymentCaptured's
    async with db.transaction() as session:
        movements = (
            await session.execute(select(payment_movements.c.kind).where(payment_movements.c.order_id == order_id))
        ).all()
    assert [m.kind for m in movements] == ["captured"], "the refund's movement went with its event"
    assert await payments.stream_length(f"payment-{order_id}") == 2
