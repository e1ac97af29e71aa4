"""A batch of saga replies leaves every order as the same replies one by one do (`adapters/order_batch.py`).

Inside a batch the saga decides in memory and writes once at the end; alone, each reply loads and writes
at once. The two paths must agree on everything a reply leaves behind: the stream, the read model, the
saga's step, the payment token, the sales report's row and the commands sent. A batch that fails at its
end (another writer appended to one of its streams first) rolls back as a whole and its replies run again
one by one, each deciding on the state as it is then.
"""

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from order_test_builders import repository
from sqlalchemy import select
from test_order_statement_counts import Statements, place, record

from oms_events.messages import (
    Message,
    PaymentCaptured,
    PaymentDeclined,
    ShipmentCreated,
    ShipmentPicked,
    Shipped,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Allocation, Shortage
from oms_runtime.db import Database
from oms_runtime.messaging import Outcome
from oms_runtime.testing import HandlerHarness
from order_service.adapters.order_batch import OrderBatch, StepChange
from order_service.adapters.projection import order_summaries
from order_service.adapters.sales_projection import sales_orders
from order_service.adapters.tables import payment_tokens, saga_steps
from order_service.handlers import OrderCommands, OrderSaga

LINE = [Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=1)]


def reserved(o: UUID) -> Message:
    return StockReserved(order_id=o, reservation_id=uuid4(), allocations=LINE)


def captured(o: UUID) -> Message:
    return PaymentCaptured(order_id=o, payment_id=uuid4(), amount_minor=1000, currency="EUR", gateway_reference="g")


def shipped(o: UUID) -> Message:
    return Shipped(
        order_id=o,
        shipment_id=uuid4(),
        warehouse_id="WH-1",
        carrier="DHL",
        tracking_number="T-1",
        tracking_url="https://track.example/T-1",
        estimated_delivery=date(2026, 12, 1),
    )


def declined(o: UUID) -> Message:
    return PaymentDeclined(order_id=o, payment_id=uuid4(), reason_code="card_declined", reason="declined")


def released(o: UUID) -> Message:
    return StockReleased(order_id=o, reservation_id=None)


def failed(o: UUID) -> Message:
    return StockReservationFailed(
        order_id=o, reason="out of stock", shortages=[Shortage(sku="SKU-A", requested=1, available=0)]
    )


SHIPMENT = UUID(int=7)


def manual_created(o: UUID) -> Message:
    return ShipmentCreated(order_id=o, shipment_id=SHIPMENT, warehouse_id="WH-1", lines=LINE, mode="manual")


def manual_picked(o: UUID) -> Message:
    return ShipmentPicked(order_id=o, shipment_id=SHIPMENT, warehouse_id="WH-1", picked=LINE, mode="manual")


Reply = Callable[[UUID], Message]

SCENARIOS: dict[str, list[Reply]] = {
    "shipped": [reserved, captured, shipped],
    "declined, then released": [reserved, declined, released],
    "not reserved": [failed],
    "picked by hand": [reserved, captured, manual_created, manual_picked],
}


async def state(db: Database, harness: HandlerHarness, order_id: UUID) -> dict[str, Any]:
    """What the replies left of an order, without its ids and times."""
    repo = repository()
    async with db.transaction() as session:
        history = await repo.history(session, order_id)
        summary = (
            (await session.execute(select(order_summaries).where(order_summaries.c.order_id == order_id)))
            .mappings()
            .one()
        )
        step = (await session.execute(select(saga_steps).where(saga_steps.c.order_id == order_id))).mappings().first()
        token = await session.scalar(select(payment_tokens.c.token).where(payment_tokens.c.order_id == order_id))
        sold = (await session.execute(select(sales_orders).where(sales_orders.c.order_id == order_id))).mappings().one()
    return {
        "stream": [(s.version, s.envelope.type) for s in history],
        "summary": {
            k: summary[k]
            for k in (
                "status",
                "version",
                "last_event_type",
                "warehouses",
                "shipment_status",
                "carrier",
                "tracking_number",
            )
        },
        "step": None
        if step is None
        else {k: step[k] for k in ("awaiting", "command_type", "attempts", "state", "command")}
        | {"deadline_after_update": step["deadline_at"] > step["updated_at"]},
        "token": token,
        "sales": (sold["outcome"], sold["refunded_minor"], sold["version"]),
        "sent": [type(m).__name__ for m in await harness.emitted(order_id)],
    }


def _without_order_ids(found: dict[str, Any]) -> dict[str, Any]:
    """The state without what differs from order to order (its id, when it was placed)."""
    step = found["step"]
    if step is not None:
        step = dict(step, command={k: v for k, v in step["command"].items() if k not in ("order_id", "placed_at")})
    return dict(found, step=step)


async def test_a_batch_leaves_every_order_as_the_replies_one_by_one_do(db: Database, http: httpx.AsyncClient) -> None:
    saga = OrderSaga(repository())
    alone = HandlerHarness(db, "order-service", saga.handler_map())
    together = HandlerHarness(db, "order-service", saga.handler_map())
    orders_alone = {name: UUID((await place(http))["order_id"]) for name in SCENARIOS}
    orders_together = {name: UUID((await place(http))["order_id"]) for name in SCENARIOS}

    for name, replies in SCENARIOS.items():
        for reply in replies:
            assert await alone.send(reply(orders_alone[name])) is Outcome.PROCESSED
    # One batch: the scenarios' replies interleaved, so that each order has several replies in it.
    interleaved = [
        reply(orders_together[name])
        for step in itertools.zip_longest(*[[(n, r) for r in rs] for n, rs in SCENARIOS.items()])
        for name, reply in (s for s in step if s is not None)
    ]
    records = [record(reply, 1000 + i) for i, reply in enumerate(interleaved)]
    # The first record again at the end: one effect.
    statements = Statements(db)
    with statements.counting():
        outcomes = await together.processor.process_batch([*records, records[0]])
    assert outcomes == [Outcome.PROCESSED] * len(records) + [Outcome.DUPLICATE]
    assert statements.transactions == 1, "the batch took effect as a batch, not one by one after a failure"

    for name in SCENARIOS:
        one_by_one = _without_order_ids(await state(db, alone, orders_alone[name]))
        batched = _without_order_ids(await state(db, together, orders_together[name]))
        assert batched == one_by_one, name
    assert (await state(db, together, orders_together["shipped"]))["summary"]["status"] == "shipped"
    assert (await state(db, together, orders_together["shipped"]))["token"] is None


async def test_a_batch_that_loses_a_race_runs_its_replies_again_one_by_one(
    db: Database, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repository()
    raced, other = UUID((await place(http))["order_id"]), UUID((await place(http))["order_id"])
    harness = HandlerHarness(db, "order-service", OrderSaga(repo).handler_map())
    commands = OrderCommands(db, repo, harness.registry)
    original = OrderBatch.write
    writes = 0

    async def racing_write(self: OrderBatch, *args: Any) -> None:
        nonlocal writes
        writes += 1
        if writes == 1:
            # Another writer (an operator's hold, in a transaction of its own) appends to one of the
            # batch's streams before the batch writes.
            await commands.put_on_hold(raced, "fraud check", "ops@example.com")
        await original(self, *args)

    monkeypatch.setattr(OrderBatch, "write", racing_write)
    outcomes = await harness.processor.process_batch([record(reserved(raced), 1), record(reserved(other), 2)])
    assert outcomes == [Outcome.PROCESSED] * 2
    raced_state = await state(db, harness, raced)
    other_state = await state(db, harness, other)
    # The batch wrote once and failed; nothing of it stayed. Each reply then took effect once, alone, on
    # its stream as it was: the held order keeps its capture back, the other one asks for it.
    assert writes == 1
    assert raced_state["stream"] == [(1, "OrderPlaced"), (2, "OrderPutOnHold"), (3, "OrderStockReserved")]
    assert (raced_state["summary"]["status"], raced_state["summary"]["version"]) == ("on_hold", 3)
    assert "CapturePayment" not in raced_state["sent"]
    assert other_state["stream"] == [(1, "OrderPlaced"), (2, "OrderStockReserved")]
    assert (other_state["summary"]["status"], other_state["summary"]["version"]) == ("awaiting_payment", 2)
    assert other_state["sent"].count("CapturePayment") == 1


T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)
AWAIT = [UUID(int=1), T0, "StockReserved|StockReservationFailed", "ReserveStock", "{}", T0 + timedelta(minutes=1)]


def test_a_step_folds_into_the_last_command_with_what_came_after_it() -> None:
    awaited = StepChange().then("await_reply", AWAIT)
    assert awaited.awaiting == (AWAIT[2], AWAIT[3], AWAIT[4], AWAIT[5])
    assert (awaited.state, awaited.updated_at) == ("waiting", T0)
    parked = awaited.then("park", [UUID(int=1), T1])
    assert (parked.awaiting, parked.state, parked.updated_at) == (awaited.awaiting, "parked", T1)
    moved = awaited.then("move_deadline", [UUID(int=1), T1, T1 + timedelta(minutes=1)])
    assert moved.awaiting == (AWAIT[2], AWAIT[3], AWAIT[4], T1 + timedelta(minutes=1))
    assert (moved.state, moved.updated_at) == ("waiting", T1)


def test_a_step_without_a_command_in_the_batch_is_an_update_of_the_stored_row() -> None:
    parked = StepChange().then("park", [UUID(int=1), T0])
    assert (parked.awaiting, parked.ended, parked.state, parked.deadline_at) == (None, False, "parked", None)
    moved = parked.then("move_deadline", [UUID(int=1), T1, T1 + timedelta(minutes=1)])
    assert (moved.state, moved.deadline_at, moved.updated_at) == ("parked", T1 + timedelta(minutes=1), T1)


def test_an_ended_step_stays_ended_and_its_token_removed_even_under_a_new_command() -> None:
    ended = StepChange().then("await_reply", AWAIT).then("end", [UUID(int=1)])
    assert (ended.ended, ended.token_removed, ended.awaiting) == (True, True, None)
    assert ended.then("park", [UUID(int=1), T1]) == ended
    again = ended.then("await_reply", AWAIT)
    assert (again.ended, again.token_removed, again.awaiting is not None) == (False, True, True)
    with pytest.raises(ValueError, match="unknown step write"):
        StepChange().then("nothing", [])
