"""How many database statements order-service runs per placed order and per saga reply, pinned.

A statement costs a round trip and its Python, which made statements most of order-service's CPU per
order; these counts are its budget, so a change that adds one fails here. Counted on the real PostgreSQL
(`StatementCounter`: SQLAlchemy's statements and those sent straight to asyncpg), the order driven the way
the service drives it, with the read models the service keeps (the sales report's too): the HTTP route
places it, the replies go through the runtime's processor. The runtime's own statements (inbox, outbox:
one each per transaction or batch) are counted apart.

Before this budget, a placement ran 8 statements in 2 transactions and a reply 6 to 7 (28 per order on
the happy path); then 5 in 1 (the sales rows in two statements of their own), and 3 (14 per order); then
3 in 1, the sales rows written by the placement's statement, and 3 (12 per order), the hot ones on asyncpg;
now a placement is 1 statement (the claim, the events and the writes together) and a batch of replies,
however many, is 3.
"""

import re
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
from order_test_builders import repository, saga_row
from sqlalchemy import func, select

from oms_events import ContractMessage, default_registry
from oms_events.messages import Message, PaymentCaptured, Shipped, StockReserved
from oms_events.values import Allocation
from oms_runtime.db import Database
from oms_runtime.messaging import Outcome, SourceRecord
from oms_runtime.testing import HandlerHarness, StatementCounter
from order_service.adapters.projection import order_summaries
from order_service.adapters.sales_projection import sales_order_lines, sales_orders
from order_service.adapters.tables import payment_tokens
from order_service.handlers import DeadlineSweeper, OrderSaga

REGISTRY = default_registry()
OPS_KEY = "test-ops-key-0123456789"
TABLES = re.compile(
    r"\b(events|order_references|payment_tokens|saga_steps|order_summaries|sales_orders|sales_order_lines)\b"
)


class Statements(StatementCounter):
    """The statements the engine sends, order-service's apart from the runtime's (inbox, outbox)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, TABLES)


PLACING = {
    "order_references",
    "payment_tokens",
    "events",
    "order_summaries",
    "saga_steps",
    "sales_orders",
    "sales_order_lines",
}
"""The one statement of a placement (`order_sql.placing`)."""


def body(reference: str) -> dict[str, Any]:
    return {
        "channel": "web",
        "external_reference": reference,
        "customer": {"customer_id": "c-1", "name": "Jane", "email": "jane@example.com"},
        "lines": [{"sku": "SKU-A", "quantity": 1, "unit_price_minor": 1000}],
        "currency": "EUR",
        "shipping_address": {"name": "J", "line1": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "delivery_method": "standard",
        "payment_token": "tok_approve",
    }


async def place(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post("/orders", json=body(f"W-{uuid4().hex[:8]}"))
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


def replies(order_id: UUID) -> list[Message]:
    """The happy path's replies: stock reserved, payment captured, shipped."""
    return [
        StockReserved(
            order_id=order_id,
            reservation_id=uuid4(),
            allocations=[Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=1)],
        ),
        PaymentCaptured(
            order_id=order_id, payment_id=uuid4(), amount_minor=1000, currency="EUR", gateway_reference="g"
        ),
        Shipped(
            order_id=order_id,
            shipment_id=uuid4(),
            warehouse_id="WH-1",
            carrier="DHL",
            tracking_number="T-1",
            tracking_url="https://track.example/T-1",
            estimated_delivery=date(2026, 12, 1),
        ),
    ]


async def summary_status(db: Database, order_id: UUID) -> tuple[str, int] | None:
    async with db.transaction() as session:
        row = (
            await session.execute(
                select(order_summaries.c.status, order_summaries.c.version).where(
                    order_summaries.c.order_id == order_id
                )
            )
        ).first()
    return (row[0], row[1]) if row is not None else None


async def test_a_placement_is_one_statement_in_one_transaction(db: Database, http: httpx.AsyncClient) -> None:
    statements = Statements(db)
    with statements.counting():
        placed = await place(http)
    # Claim the reference and keep the token; append OrderPlaced; the read models and the saga's step.
    # The claim of the reference and the token, OrderPlaced, the read models and the saga's step: one.
    assert statements.tables() == [PLACING]
    assert (len(statements.runtime), statements.transactions) == (1, 1), "the outbox row, in the same transaction"
    # The answer is made from what was recorded, and it is what a read gives.
    order_id = UUID(placed["order_id"])
    again = (await http.get(f"/orders/{order_id}")).json()
    assert placed == again
    assert (placed["status"], [t["event"] for t in placed["timeline"]]) == ("placed", ["OrderPlaced"])
    assert await summary_status(db, order_id) == ("placed", 1)
    step = await saga_row(db, order_id)
    assert step is not None
    assert (step["command_type"], step["state"]) == ("ReserveStock", "waiting")
    async with db.transaction() as session:
        sold = (await session.execute(select(sales_orders).where(sales_orders.c.order_id == order_id))).mappings().one()
        lines = (
            (await session.execute(select(sales_order_lines).where(sales_order_lines.c.order_id == order_id)))
            .mappings()
            .all()
        )
    assert (sold["outcome"], sold["units"], sold["gross_minor"], sold["version"]) == ("open", 1, 1000, 1)
    assert [(line["sku"], line["quantity"], line["gross_minor"]) for line in lines] == [("SKU-A", 1, 1000)]


async def test_a_resubmission_rolls_the_placement_back_and_is_answered_by_the_claim(
    db: Database, http: httpx.AsyncClient
) -> None:
    first = await place(http)
    order_id = UUID(first["order_id"])
    step_before = await saga_row(db, order_id)
    statements = Statements(db)
    with statements.counting():
        response = await http.post("/orders", json=body(first["external_reference"]))
    assert response.status_code == 200
    assert response.json()["order_id"] == first["order_id"]
    # The placement found the reference held and rolled back; the claim alone, then the holder's read.
    assert statements.tables() == [PLACING, {"order_references", "payment_tokens"}, {"events"}]
    assert (len(statements.runtime), statements.transactions) == (0, 3)
    assert await saga_row(db, order_id) == step_before, "the holder's saga step as it was"
    assert await summary_status(db, order_id) == ("placed", 1)
    async with db.transaction() as session:
        tokens = await session.scalar(
            select(func.count()).select_from(payment_tokens).where(payment_tokens.c.order_id == UUID(first["order_id"]))
        )
    assert tokens == 1, "the resubmission kept no second token"


async def test_each_saga_reply_is_three_statements(db: Database, http: httpx.AsyncClient) -> None:
    order_id = UUID((await place(http))["order_id"])
    harness = HandlerHarness(db, "order-service", OrderSaga(repository()).handler_map())
    statements = Statements(db)
    seen = []
    for reply in replies(order_id):
        with statements.counting():
            assert await harness.send(reply) is Outcome.PROCESSED
        seen.append(statements.tables())
        assert (len(statements.runtime), statements.transactions) == (2, 1), "the inbox row and the outbox rows"
    [reserved, captured, shipped] = seen
    # The history with the saga's step and the payment token in one read; the append; the read model with
    # the saga's next step (or, once shipped, the end of the step and of the token).
    load = {"events", "saga_steps", "payment_tokens"}
    assert reserved == [load, {"events"}, {"order_summaries", "saga_steps"}]
    assert captured == [load, {"events"}, {"order_summaries", "saga_steps"}]
    assert shipped == [load, {"events"}, {"order_summaries", "saga_steps", "payment_tokens"}]
    assert await summary_status(db, order_id) == ("shipped", 4)
    assert await saga_row(db, order_id) is None
    async with db.transaction() as session:
        assert await session.scalar(select(payment_tokens.c.token).where(payment_tokens.c.order_id == order_id)) is None


async def test_a_batch_of_replies_is_three_statements_whatever_its_size(db: Database, http: httpx.AsyncClient) -> None:
    # Three orders, two replies each, interleaved: the orders loaded together, the events appended
    # together, the read models and saga steps written together (order_service.adapters.order_batch).
    orders = [UUID((await place(http))["order_id"]) for _ in range(3)]
    harness = HandlerHarness(db, "order-service", OrderSaga(repository()).handler_map())
    batch = [replies(o)[0] for o in orders] + [replies(o)[1] for o in orders]
    records = [record(reply, offset) for offset, reply in enumerate(batch)]
    statements = Statements(db)
    with statements.counting():
        outcomes = await harness.processor.process_batch(records)
    assert outcomes == [Outcome.PROCESSED] * 6
    assert statements.tables() == [
        {"events", "saga_steps", "payment_tokens"},
        {"events"},
        {"order_summaries", "saga_steps", "payment_tokens"},
    ]
    assert (len(statements.runtime), statements.transactions) == (2, 1), "one inbox and one outbox statement"
    for order_id in orders:
        assert await summary_status(db, order_id) == ("confirmed", 3)
        step = await saga_row(db, order_id)
        assert step is not None
        assert (step["command_type"], step["state"], step["attempts"]) == ("ShipOrder", "waiting", 1)


def record(message: ContractMessage, offset: int) -> SourceRecord:
    value = REGISTRY.wrap(message, producer="test").to_bytes()
    return SourceRecord(message.topic, 0, offset, message.key.encode(), value)


async def test_a_sweep_that_finds_nothing_due_is_one_statement_outside_a_transaction(db: Database) -> None:
    sweeper = DeadlineSweeper(
        db, repository(), REGISTRY, step_timeout=timedelta(seconds=60), max_attempts=2, interval_s=60
    )
    statements = Statements(db)
    with statements.counting():
        assert await sweeper.sweep() == 0
    assert statements.tables() == [{"saga_steps"}]
    assert statements.transactions == 0, "no BEGIN and COMMIT round trips every second"


async def test_two_replies_for_one_order_in_one_batch_both_take_effect(db: Database, http: httpx.AsyncClient) -> None:
    # The second handler starts from what the first wrote in the same transaction: the history it loads
    # holds the first one's events, and its read-model row and saga step are written over the first one's.
    order_id = UUID((await place(http))["order_id"])
    harness = HandlerHarness(db, "order-service", OrderSaga(repository()).handler_map())
    reserved, captured, _ = replies(order_id)
    outcomes = await harness.processor.process_batch([record(reserved, 1), record(captured, 2)])
    assert outcomes == [Outcome.PROCESSED] * 2
    assert await summary_status(db, order_id) == ("confirmed", 3)
    step = await saga_row(db, order_id)
    assert step is not None
    assert (step["command_type"], step["state"], step["attempts"]) == ("ShipOrder", "waiting", 1)
