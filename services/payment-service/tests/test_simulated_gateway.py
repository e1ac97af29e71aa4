"""The simulated gateway: answers by token, and its ledger in PostgreSQL makes captures idempotent."""

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from oms_runtime.db import Database
from payment_service.adapters.simulated_gateway import IdempotencyKeyReusedError, SimulatedGateway, simulated_answer
from payment_service.adapters.tables import gateway_charges


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
