"""The simulated gateway: its test tokens, and its ledger (own transactions, one answer per idempotency
key, never more captured than authorised or refunded than captured), on a real PostgreSQL."""

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy import select

from oms_runtime.db import Database
from payment_service.adapters.simulated_gateway import (
    IdempotencyKeyReusedError,
    SimulatedGateway,
    capture_refusal,
    refund_refusal,
    token_behaviour,
)
from payment_service.adapters.tables import simulated_gateway_operations as ops
from payment_service.domain.gateway import PermanentGatewayError, TransientGatewayError


@pytest.mark.parametrize("token", ["tok_approve", "tok_visa", "tok_mastercard"])
def test_approving_tokens(token: str) -> None:
    assert token_behaviour(token).approved


@pytest.mark.parametrize(
    ("token", "reason_code"),
    [
        ("tok_decline_insufficient_funds", "insufficient_funds"),
        ("tok_decline_fraud", "suspected_fraud"),
        ("tok_unknown", "invalid_token"),
    ],
)
def test_declining_tokens(token: str, reason_code: str) -> None:
    behaviour = token_behaviour(token)
    assert not behaviour.approved
    assert behaviour.reason_code == reason_code


def test_behaviour_tokens() -> None:
    assert token_behaviour("tok_transient_error").flaky
    assert token_behaviour("tok_slow").slow
    assert token_behaviour("tok_permanent_error").capture_fails
    assert token_behaviour("tok_refund_refused_once").refund_refused_once
    assert token_behaviour("tok_refund_refused_once").approved
    assert not token_behaviour("tok_approve").flaky


@pytest.mark.parametrize(
    ("approved", "settled", "amount", "currency", "reason_code"),
    [
        (True, None, 1_000, "EUR", None),
        (True, None, 400, "EUR", None),
        (True, None, 1_001, "EUR", "exceeds_authorised"),
        (True, None, 100, "USD", "currency_mismatch"),
        (True, None, 0, "EUR", "invalid_amount"),
        (True, "captured", 100, "EUR", "already_captured"),
        (True, "voided", 100, "EUR", "already_voided"),
        (False, None, 100, "EUR", "not_authorised"),
    ],
)
def test_capture_rules(
    approved: bool, settled: str | None, amount: int, currency: str, reason_code: str | None
) -> None:
    refusal = capture_refusal(1_000, "EUR", approved, settled, amount, currency)
    assert (refusal.reason_code if refusal else None) == reason_code


@pytest.mark.parametrize(
    ("captured", "refunded", "amount", "currency", "reason_code"),
    [
        (1_000, 0, 1_000, "EUR", None),
        (1_000, 400, 600, "EUR", None),
        (1_000, 400, 601, "EUR", "exceeds_captured"),
        (1_000, 0, 100, "USD", "currency_mismatch"),
        (1_000, 0, 0, "EUR", "invalid_amount"),
        (None, 0, 100, "EUR", "not_captured"),
    ],
)
def test_refund_rules(captured: int | None, refunded: int, amount: int, currency: str, reason_code: str | None) -> None:
    refusal = refund_refusal(captured, "EUR" if captured else None, refunded, amount, currency)
    assert (refusal.reason_code if refusal else None) == reason_code


async def rows(db: Database, operation: str, target: str | None = None) -> list[tuple[int, bool]]:
    async with db.transaction() as session:
        query = select(ops.c.amount_minor, ops.c.result).where(ops.c.operation == operation)
        if target is not None:
            query = query.where(ops.c.target_reference == target)
        return [
            (r.amount_minor, bool(r.result["approved"]))
            for r in await session.execute(query.order_by(ops.c.created_at))
        ]


async def count_key(db: Database, key: str) -> int:
    async with db.transaction() as session:
        return len((await session.execute(select(ops.c.idempotency_key).where(ops.c.idempotency_key == key))).all())


async def test_same_key_gives_the_same_answer_and_one_authorisation(db: Database) -> None:
    gateway = SimulatedGateway(db)
    key = f"authorise-{uuid4()}"
    first = await gateway.authorise(key, 1_000, "EUR", "tok_approve")
    # A new gateway object: the ledger is in the database, so it survives a restart.
    again = await SimulatedGateway(db).authorise(key, 1_000, "EUR", "tok_approve")
    assert first == again
    assert first.approved
    assert first.reference.startswith("sim_au_")
    assert await count_key(db, key) == 1


async def test_concurrent_calls_with_one_key_authorise_once(db: Database) -> None:
    gateway = SimulatedGateway(db)
    key = f"authorise-{uuid4()}"
    results = await asyncio.gather(*(gateway.authorise(key, 500, "EUR", "tok_approve") for _ in range(5)))
    assert len({r.reference for r in results}) == 1
    assert await count_key(db, key) == 1


async def test_a_key_reused_for_another_request_is_refused(db: Database) -> None:
    gateway = SimulatedGateway(db)
    key = f"authorise-{uuid4()}"
    await gateway.authorise(key, 500, "EUR", "tok_approve")
    with pytest.raises(IdempotencyKeyReusedError):
        await gateway.authorise(key, 501, "EUR", "tok_approve")


async def test_partial_capture_then_no_second_capture_and_no_void(db: Database) -> None:
    gateway = SimulatedGateway(db)
    auth = await gateway.authorise(f"a-{uuid4()}", 1_000, "EUR", "tok_approve")
    too_much = await gateway.capture(f"c-{uuid4()}", auth.reference, 1_001, "EUR")
    assert (too_much.approved, too_much.reason_code) == (False, "exceeds_authorised")
    partial = await gateway.capture(f"c-{uuid4()}", auth.reference, 600, "EUR")
    assert partial.approved
    assert partial.reference.startswith("sim_ch_")
    second = await gateway.capture(f"c-{uuid4()}", auth.reference, 100, "EUR")
    assert (second.approved, second.reason_code) == (False, "already_captured")
    void = await gateway.void(f"v-{uuid4()}", auth.reference)
    assert (void.approved, void.reason_code) == (False, "already_captured")
    assert await rows(db, "capture", auth.reference) == [(1_001, False), (600, True), (100, False)]


async def test_a_voided_authorisation_cannot_be_captured(db: Database) -> None:
    gateway = SimulatedGateway(db)
    auth = await gateway.authorise(f"a-{uuid4()}", 1_000, "EUR", "tok_approve")
    key = f"v-{uuid4()}"
    void = await gateway.void(key, auth.reference)
    assert void.approved
    assert await gateway.void(key, auth.reference) == void
    capture = await gateway.capture(f"c-{uuid4()}", auth.reference, 1_000, "EUR")
    assert (capture.approved, capture.reason_code) == (False, "already_voided")


async def test_a_declined_authorisation_is_not_captured(db: Database) -> None:
    gateway = SimulatedGateway(db)
    auth = await gateway.authorise(f"a-{uuid4()}", 1_000, "EUR", "tok_decline_insufficient_funds")
    assert (auth.approved, auth.reason_code) == (False, "insufficient_funds")
    capture = await gateway.capture(f"c-{uuid4()}", auth.reference, 1_000, "EUR")
    assert (capture.approved, capture.reason_code) == (False, "not_authorised")


async def captured(gateway: SimulatedGateway, amount: int = 1_000, token: str = "tok_approve") -> str:
    auth = await gateway.authorise(f"a-{uuid4()}", amount, "EUR", token)
    capture = await gateway.capture(f"c-{uuid4()}", auth.reference, amount, "EUR")
    assert capture.approved
    return capture.reference


async def test_partial_refunds_never_exceed_the_capture_and_a_key_refunds_once(db: Database) -> None:
    gateway = SimulatedGateway(db)
    reference = await captured(gateway)
    key = f"r-{uuid4()}"
    first = await gateway.refund(key, reference, 400, "EUR")
    assert first.approved
    assert first.reference.startswith("sim_rf_")
    assert await gateway.refund(key, reference, 400, "EUR") == first
    assert (await gateway.refund(f"r-{uuid4()}", reference, 600, "EUR")).approved
    over = await gateway.refund(f"r-{uuid4()}", reference, 1, "EUR")
    assert (over.approved, over.reason_code) == (False, "exceeds_captured")
    assert await rows(db, "refund", reference) == [(400, True), (600, True), (1, False)]
    with pytest.raises(IdempotencyKeyReusedError):
        await gateway.refund(key, reference, 300, "EUR")


async def test_concurrent_refunds_of_one_capture_never_exceed_it(db: Database) -> None:
    gateway = SimulatedGateway(db)
    reference = await captured(gateway)
    results = await asyncio.gather(*(gateway.refund(f"r-{uuid4()}", reference, 300, "EUR") for _ in range(5)))
    assert sum(1 for r in results if r.approved) == 3
    assert sum(amount for amount, ok in await rows(db, "refund", reference) if ok) == 900


async def test_the_refund_refused_once_token_refuses_the_first_refund_only(db: Database) -> None:
    gateway = SimulatedGateway(db)
    auth = await gateway.authorise(f"a-{uuid4()}", 1_000, "EUR", "tok_refund_refused_once")
    capture = await gateway.capture(f"c-{uuid4()}", auth.reference, 1_000, "EUR")
    assert capture.approved
    key = f"r-{uuid4()}"
    first = await gateway.refund(key, capture.reference, 400, "EUR")
    assert (first.approved, first.reason_code) == (False, "refund_declined")
    assert await gateway.refund(key, capture.reference, 400, "EUR") == first, "the same request: the same refusal"
    assert (await gateway.refund(f"r-{uuid4()}", capture.reference, 400, "EUR")).approved
    assert await rows(db, "refund", capture.reference) == [(400, False), (400, True)]


async def test_an_unknown_capture_is_not_refunded(db: Database) -> None:
    refused = await SimulatedGateway(db).refund(f"r-{uuid4()}", "sim_ch_nothing", 100, "EUR")
    assert (refused.approved, refused.reason_code) == (False, "not_captured")


async def test_the_ledger_never_holds_the_token(db: Database) -> None:
    key = f"authorise-{uuid4()}"
    await SimulatedGateway(db).authorise(key, 100, "EUR", "tok_mastercard")
    async with db.transaction() as session:
        row = (await session.execute(select(ops).where(ops.c.idempotency_key == key))).one()
    assert "tok_mastercard" not in repr(tuple(row))


async def test_a_transient_token_loses_the_first_answer_of_every_operation(db: Database) -> None:
    gateway = SimulatedGateway(db)
    key = f"a-{uuid4()}"
    with pytest.raises(TransientGatewayError):
        await gateway.authorise(key, 700, "EUR", "tok_transient_error")
    auth = await gateway.authorise(key, 700, "EUR", "tok_transient_error")
    assert auth.approved
    capture_key = f"c-{uuid4()}"
    with pytest.raises(TransientGatewayError):
        await gateway.capture(capture_key, auth.reference, 700, "EUR")
    capture = await gateway.capture(capture_key, auth.reference, 700, "EUR")
    refund_key = f"r-{uuid4()}"
    with pytest.raises(TransientGatewayError):
        await gateway.refund(refund_key, capture.reference, 700, "EUR")
    assert (await gateway.refund(refund_key, capture.reference, 700, "EUR")).approved
    # Each operation happened once, although its first answer was lost.
    assert await rows(db, "capture", auth.reference) == [(700, True)]
    assert await rows(db, "refund", capture.reference) == [(700, True)]


async def test_a_permanent_error_token_fails_the_capture_for_good(db: Database) -> None:
    gateway = SimulatedGateway(db)
    auth = await gateway.authorise(f"a-{uuid4()}", 700, "EUR", "tok_permanent_error")
    assert auth.approved
    key = f"c-{uuid4()}"
    for _ in range(2):  # the same answer every time
        with pytest.raises(PermanentGatewayError) as failure:
            await gateway.capture(key, auth.reference, 700, "EUR")
        assert failure.value.reason_code == "processing_error"
    assert (await gateway.void(f"v-{uuid4()}", auth.reference)).approved


async def test_a_slow_token_answers_after_the_delay(db: Database) -> None:
    gateway = SimulatedGateway(db, slow_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await gateway.authorise(f"a-{uuid4()}", 700, "EUR", "tok_slow")).approved
    assert loop.time() - started >= 0.3
