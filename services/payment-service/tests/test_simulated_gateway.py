"""The simulated gateway: answers by token, and its ledger in PostgreSQL makes captures and refunds idempotent."""

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from oms_runtime.db import Database
from payment_service.adapters.simulated_gateway import (
    ChargeSeen,
    IdempotencyKeyReusedError,
    SimulatedGateway,
    simulated_answer,
    simulated_refund_answer,
)
from payment_service.adapters.tables import gateway_charges, gateway_refunds


@pytest.mark.parametrize("token", ["tok_approve", "tok_visa", "tok_mastercard"])
def test_approving_tokens(token: str) -> None:
    assert simulated_answer(token).approved


@pytest.mark.parametrize(
    ("token", "reason_code"),
    [
        ("tok_decline_insufficient_funds", "insufficient_funds"),
        ("tok_decline_fraud", "suspected_fraud"),
        ("tok_unknown", "invalid_token"),
        ("TOK_APPROVE", "invalid_token"),
        ("", "invalid_token"),
    ],
)
def test_declining_tokens(token: str, reason_code: str) -> None:
    answer = simulated_answer(token)
    assert not answer.approved
    assert answer.reason_code == reason_code
    assert answer.reason


async def _charges(db: Database, key: str) -> int:
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count()).select_from(gateway_charges).where(gateway_charges.c.idempotency_key == key)
        )
    return int(count or 0)


async def test_same_key_gives_the_same_answer_and_one_charge(db: Database) -> None:
    gateway = SimulatedGateway(db)
    key = f"capture-{uuid4()}"
    first = await gateway.capture(key, 4_999, "EUR", "tok_visa")
    again = await gateway.capture(key, 4_999, "EUR", "tok_visa")
    assert first.approved
    assert first.reference.startswith("sim_ch_")
    assert again == first
    assert await _charges(db, key) == 1


async def test_the_ledger_survives_a_new_gateway_instance(db: Database) -> None:
    key = f"capture-{uuid4()}"
    first = await SimulatedGateway(db).capture(key, 100, "GBP", "tok_decline_fraud")
    # A restarted service builds a new gateway; the answer comes from the ledger, not from the token.
    again = await SimulatedGateway(db).capture(key, 100, "GBP", "tok_approve")
    assert not first.approved
    assert first.reason_code == "suspected_fraud"
    assert again == first


async def test_concurrent_captures_with_one_key_charge_once(db: Database) -> None:
    gateway = SimulatedGateway(db)
    key = f"capture-{uuid4()}"
    results = await asyncio.gather(*(gateway.capture(key, 2_500, "EUR", "tok_approve") for _ in range(5)))
    assert len({r.reference for r in results}) == 1
    assert await _charges(db, key) == 1


async def test_a_key_reused_for_another_amount_is_refused(db: Database) -> None:
    gateway = SimulatedGateway(db)
    key = f"capture-{uuid4()}"
    await gateway.capture(key, 1_000, "EUR", "tok_approve")
    with pytest.raises(IdempotencyKeyReusedError):
        await gateway.capture(key, 1_001, "EUR", "tok_approve")
    with pytest.raises(IdempotencyKeyReusedError):
        await gateway.capture(key, 1_000, "USD", "tok_approve")


async def test_the_ledger_never_holds_the_token(db: Database) -> None:
    key = f"capture-{uuid4()}"
    await SimulatedGateway(db).capture(key, 700, "EUR", "tok_mastercard")
    async with db.transaction() as session:
        row = (await session.execute(select(gateway_charges).where(gateway_charges.c.idempotency_key == key))).one()
    assert "tok_mastercard" not in repr(tuple(row))


# ---------------------------------------------------------------- refunds


@pytest.mark.parametrize(
    ("charge", "refunded", "amount", "currency", "reason_code"),
    [
        (ChargeSeen(1_000, "EUR", True), 0, 1_000, "EUR", None),
        (ChargeSeen(1_000, "EUR", True), 400, 600, "EUR", None),
        (ChargeSeen(1_000, "EUR", True), 400, 601, "EUR", "exceeds_captured"),
        (ChargeSeen(1_000, "EUR", True), 0, 100, "USD", "currency_mismatch"),
        (ChargeSeen(1_000, "EUR", True), 0, 0, "EUR", "invalid_amount"),
        (ChargeSeen(1_000, "EUR", False), 0, 100, "EUR", "not_captured"),
        (None, 0, 100, "EUR", "not_captured"),
    ],
)
def test_refund_answers(
    charge: ChargeSeen | None, refunded: int, amount: int, currency: str, reason_code: str | None
) -> None:
    answer = simulated_refund_answer(charge, refunded, amount, currency)
    assert answer.approved is (reason_code is None)
    assert answer.reason_code == reason_code


async def _refunds(db: Database, charge_reference: str) -> list[tuple[str, int, bool]]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(gateway_refunds.c.idempotency_key, gateway_refunds.c.amount_minor, gateway_refunds.c.result).where(
                gateway_refunds.c.charge_reference == charge_reference
            )
        )
        return [(r.idempotency_key, r.amount_minor, bool(r.result["approved"])) for r in rows]


async def test_a_refund_with_the_same_key_refunds_once(db: Database) -> None:
    gateway = SimulatedGateway(db)
    charge = await gateway.capture(f"capture-{uuid4()}", 5_000, "EUR", "tok_visa")
    key = f"refund-{uuid4()}"
    first = await gateway.refund(key, charge.reference, 5_000, "EUR")
    # A restarted service (a new gateway object) asks again: the ledger answers.
    again = await SimulatedGateway(db).refund(key, charge.reference, 5_000, "EUR")
    assert first.approved
    assert first.reference.startswith("sim_rf_")
    assert again == first
    assert await _refunds(db, charge.reference) == [(key, 5_000, True)]


async def test_partial_refunds_never_exceed_the_charge(db: Database) -> None:
    gateway = SimulatedGateway(db)
    charge = await gateway.capture(f"capture-{uuid4()}", 5_000, "EUR", "tok_visa")
    assert (await gateway.refund(f"refund-{uuid4()}", charge.reference, 2_000, "EUR")).approved
    assert (await gateway.refund(f"refund-{uuid4()}", charge.reference, 2_000, "EUR")).approved
    too_much = await gateway.refund(f"refund-{uuid4()}", charge.reference, 1_001, "EUR")
    assert not too_much.approved
    assert too_much.reason_code == "exceeds_captured"
    assert (await gateway.refund(f"refund-{uuid4()}", charge.reference, 1_000, "EUR")).approved
    approved = [amount for _, amount, ok in await _refunds(db, charge.reference) if ok]
    assert sum(approved) == 5_000


async def test_concurrent_refunds_of_one_charge_never_exceed_it(db: Database) -> None:
    gateway = SimulatedGateway(db)
    charge = await gateway.capture(f"capture-{uuid4()}", 1_000, "EUR", "tok_visa")
    results = await asyncio.gather(
        *(gateway.refund(f"refund-{uuid4()}", charge.reference, 300, "EUR") for _ in range(6))
    )
    assert sum(r.approved for r in results) == 3
    assert {r.reason_code for r in results if not r.approved} == {"exceeds_captured"}


async def test_a_declined_or_unknown_charge_is_not_refunded(db: Database) -> None:
    gateway = SimulatedGateway(db)
    declined = await gateway.capture(f"capture-{uuid4()}", 1_000, "EUR", "tok_decline_fraud")
    for reference in (declined.reference, "sim_ch_unknown"):
        result = await gateway.refund(f"refund-{uuid4()}", reference, 100, "EUR")
        assert not result.approved
        assert result.reason_code == "not_captured"


async def test_a_refund_key_reused_for_another_refund_is_refused(db: Database) -> None:
    gateway = SimulatedGateway(db)
    charge = await gateway.capture(f"capture-{uuid4()}", 1_000, "EUR", "tok_visa")
    key = f"refund-{uuid4()}"
    await gateway.refund(key, charge.reference, 500, "EUR")
    with pytest.raises(IdempotencyKeyReusedError):
        await gateway.refund(key, charge.reference, 400, "EUR")
