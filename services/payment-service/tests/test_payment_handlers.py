"""CapturePayment and RefundPayment end to end through the runtime's message processor, on a real PostgreSQL
(and Redis for the velocity rule).

Each test module uses a throwaway schema; Kafka is not involved (the outbox is read directly). The gateway
is the simulated one, whose ledger commits in its own transactions like an external system's: a failure
injected after a gateway call rolls back the service's transaction only, and the processor's retry (a
redelivery) must then find the ledger's first answer, never move money twice.
"""

import os
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
import structlog
from redis.asyncio import Redis
from sqlalchemy import select
from structlog.testing import LogCapture

import oms_runtime.messaging
import payment_service.adapters.simulated_gateway
import payment_service.handlers
from oms_events import default_registry
from oms_events.messages import (
    CapturePayment,
    Message,
    PaymentAuthorisationVoided,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentReviewRequired,
    RefundPayment,
)
from oms_runtime.db import Database
from oms_runtime.messaging import Outcome
from oms_runtime.testing import HandlerHarness
from payment_service.adapters.movements import reconciliation
from payment_service.adapters.payment_store import PaymentStore
from payment_service.adapters.retrying_gateway import RetryingGateway
from payment_service.adapters.simulated_gateway import SimulatedGateway
from payment_service.adapters.tables import payment_movements
from payment_service.adapters.tables import simulated_gateway_operations as ops
from payment_service.adapters.velocity import RedisVelocityCounter
from payment_service.domain.gateway import GatewayResult, PaymentGateway, TransientGatewayError
from payment_service.domain.payment import payment_id_for, refund_id_for, refund_idempotency_key
from payment_service.domain.risk import RiskRules
from payment_service.handlers import PaymentHandlers, VelocityCounter

REGISTRY = default_registry()
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class CountingGateway:
    """Wraps a gateway; records every call and can fail once *after* an operation went through (the
    crash between the gateway call and the service's commit), or be unreachable for a few calls."""

    def __init__(
        self, inner: PaymentGateway, *, crash_after: set[str] | None = None, unreachable: dict[str, int] | None = None
    ) -> None:
        self._inner = inner
        self._crash_after = set(crash_after or ())
        self._unreachable = dict(unreachable or {})
        self.calls: list[tuple[str, str]] = []
        self.results: list[tuple[str, GatewayResult]] = []

    async def _call(self, operation: str, key: str, result: Any) -> GatewayResult:
        answer: GatewayResult = await result
        self.results.append((operation, answer))
        if operation in self._crash_after:
            self._crash_after.discard(operation)
            raise ConnectionResetError(f"crashed after the gateway's {operation}, before the commit")
        return answer

    def _reach(self, operation: str, key: str) -> None:
        self.calls.append((operation, key))
        if self._unreachable.get(operation):
            self._unreachable[operation] -= 1
            raise TransientGatewayError("gateway timed out")

    def keys(self, operation: str) -> list[str]:
        return [key for op, key in self.calls if op == operation]

    def result(self, operation: str) -> GatewayResult:
        return next(r for op, r in self.results if op == operation)

    async def authorise(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        self._reach("authorise", idempotency_key)
        return await self._call(
            "authorise", idempotency_key, self._inner.authorise(idempotency_key, amount_minor, currency, token)
        )

    async def capture(self, idempotency_key: str, reference: str, amount_minor: int, currency: str) -> GatewayResult:
        self._reach("capture", idempotency_key)
        return await self._call(
            "capture", idempotency_key, self._inner.capture(idempotency_key, reference, amount_minor, currency)
        )

    async def void(self, idempotency_key: str, reference: str) -> GatewayResult:
        self._reach("void", idempotency_key)
        return await self._call("void", idempotency_key, self._inner.void(idempotency_key, reference))

    async def refund(self, idempotency_key: str, reference: str, amount_minor: int, currency: str) -> GatewayResult:
        self._reach("refund", idempotency_key)
        return await self._call(
            "refund", idempotency_key, self._inner.refund(idempotency_key, reference, amount_minor, currency)
        )


class Harness(HandlerHarness):
    """`gateway` counts the calls; the handlers call `wrapped` (e.g. a RetryingGateway around it) when given."""

    def __init__(
        self,
        db: Database,
        gateway: CountingGateway,
        risk_rules: RiskRules | None = None,
        velocity: VelocityCounter | None = None,
        wrapped: PaymentGateway | None = None,
    ) -> None:
        handlers = PaymentHandlers(wrapped or gateway, PaymentStore(), risk_rules=risk_rules, velocity=velocity)
        super().__init__(db, "payment-service", handlers.handler_map(), REGISTRY)
        self.gateway = gateway

    async def order_stream_length(self, order_id: UUID) -> int:
        return await self.stream_length(f"payment-{order_id}")

    async def types(self, order_id: UUID) -> list[str]:
        return [m.message_type for m in await self.emitted(order_id)]


@pytest.fixture
def harness(db: Database) -> Harness:
    return Harness(db, CountingGateway(SimulatedGateway(db)))


def capture(
    order_id: UUID,
    token: str = "tok_approve",
    amount_minor: int = 12_990,
    currency: str = "EUR",
    **extra: Any,
) -> CapturePayment:
    return CapturePayment(
        order_id=order_id,
        customer_id=extra.pop("customer_id", "cust-1"),
        amount_minor=amount_minor,
        currency=currency,
        payment_token=token,
        **extra,
    )


async def ledger(db: Database, order_id: UUID) -> list[tuple[str, int, bool]]:
    """(operation, amount, approved) of the gateway's ledger rows for the order's keys, oldest first."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(ops.c.operation, ops.c.amount_minor, ops.c.result)
            .where(ops.c.idempotency_key.contains(str(order_id)))
            .order_by(ops.c.created_at)
        )
        return [(r.operation, r.amount_minor, bool(r.result["approved"])) for r in rows]


async def test_an_approved_payment_is_authorised_then_captured(harness: Harness) -> None:
    order_id = uuid4()
    assert await harness.send(capture(order_id, channel="web")) is Outcome.PROCESSED
    authorised, captured = await harness.emitted(order_id)
    assert isinstance(authorised, PaymentAuthorised)
    assert isinstance(captured, PaymentCaptured)
    assert captured.payment_id == authorised.payment_id == payment_id_for(order_id)
    assert (captured.amount_minor, captured.currency, captured.channel) == (12_990, "EUR", "web")
    assert authorised.gateway_reference == harness.gateway.result("authorise").reference
    assert captured.gateway_reference == harness.gateway.result("capture").reference
    assert harness.gateway.calls == [("authorise", f"authorise-{order_id}"), ("capture", f"capture-{order_id}")]
    assert await harness.order_stream_length(order_id) == 2
    assert await ledger(harness.db, order_id) == [("authorise", 12_990, True), ("capture", 12_990, True)]


async def test_multi_currency_amounts_stay_integers_in_their_currency(harness: Harness) -> None:
    for currency, amount in (("JPY", 12_990), ("GBP", 5), ("USD", 1_000_000)):
        order_id = uuid4()
        await harness.send(capture(order_id, amount_minor=amount, currency=currency))
        captured = (await harness.emitted(order_id))[-1]
        assert isinstance(captured, PaymentCaptured)
        assert (captured.amount_minor, captured.currency) == (amount, currency)


@pytest.mark.parametrize(
    ("token", "reason_code"),
    [
        ("tok_decline_insufficient_funds", "insufficient_funds"),
        ("tok_decline_fraud", "suspected_fraud"),
        ("tok_no_such_card", "invalid_token"),
    ],
)
async def test_declines_carry_the_reason_and_capture_nothing(harness: Harness, token: str, reason_code: str) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, token))
    [event] = await harness.emitted(order_id)
    assert isinstance(event, PaymentDeclined)
    assert event.reason_code == reason_code
    assert harness.gateway.keys("capture") == []
    assert await harness.order_stream_length(order_id) == 1


async def test_a_capture_that_fails_for_good_voids_the_authorisation_and_declines(harness: Harness) -> None:
    order_id = uuid4()
    assert await harness.send(capture(order_id, "tok_permanent_error")) is Outcome.PROCESSED
    authorised, voided, declined = await harness.emitted(order_id)
    assert isinstance(authorised, PaymentAuthorised)
    assert isinstance(voided, PaymentAuthorisationVoided)
    assert voided.gateway_reference == authorised.gateway_reference
    assert isinstance(declined, PaymentDeclined)
    assert declined.reason_code == "capture_failed"
    assert "processing_error" in declined.reason
    assert await ledger(harness.db, order_id) == [
        ("authorise", 12_990, True),
        ("capture", 12_990, False),
        ("void", 0, True),
    ]
    assert harness.dead_letters.sent == []


async def test_transient_errors_are_retried_with_the_same_keys_and_charge_once(db: Database) -> None:
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    counting = CountingGateway(SimulatedGateway(db))
    harness = Harness(db, counting, wrapped=RetryingGateway(counting, attempts=3, backoff_s=0.5, sleep=no_sleep))
    order_id = uuid4()
    assert await harness.send(capture(order_id, "tok_transient_error")) is Outcome.PROCESSED
    assert await harness.types(order_id) == ["PaymentAuthorised", "PaymentCaptured"]
    # Each operation's first answer was lost; the retry under the same key got the gateway's first answer.
    assert counting.keys("authorise") == [f"authorise-{order_id}"] * 2
    assert counting.keys("capture") == [f"capture-{order_id}"] * 2
    assert sleeps == [0.5, 0.5]
    assert await ledger(db, order_id) == [("authorise", 12_990, True), ("capture", 12_990, True)]


async def test_a_slow_gateway_times_out_then_a_redelivery_finds_the_one_authorisation(db: Database) -> None:
    impatient = RetryingGateway(SimulatedGateway(db, slow_s=0.3), attempts=2, backoff_s=0.01, timeout_s=0.05)
    order_id = uuid4()
    first = HandlerHarness(db, "payment-service", PaymentHandlers(impatient, PaymentStore()).handler_map(), REGISTRY)
    assert await first.send(capture(order_id, "tok_slow")) is Outcome.DEAD_LETTERED
    [(_, reason)] = first.dead_letters.sent
    assert "TransientGatewayError" in reason
    # Every attempt timed out, yet the gateway authorised once, under the one key.
    assert await ledger(db, order_id) == [("authorise", 12_990, True)]
    patient = RetryingGateway(SimulatedGateway(db, slow_s=0.05), timeout_s=2.0)
    second = HandlerHarness(db, "payment-service", PaymentHandlers(patient, PaymentStore()).handler_map(), REGISTRY)
    assert await second.send(capture(order_id, "tok_slow")) is Outcome.PROCESSED
    assert [m.message_type for m in await second.emitted(order_id)] == ["PaymentAuthorised", "PaymentCaptured"]
    assert await ledger(db, order_id) == [("authorise", 12_990, True), ("capture", 12_990, True)]


@pytest.mark.parametrize("operation", ["authorise", "capture"])
async def test_a_crash_after_a_gateway_call_moves_money_once(db: Database, operation: str) -> None:
    gateway = CountingGateway(SimulatedGateway(db), crash_after={operation})
    harness = Harness(db, gateway)
    order_id = uuid4()
    assert await harness.send(capture(order_id)) is Outcome.PROCESSED
    # The first attempt's transaction rolled back after the gateway acted; the redelivery asked again.
    assert len(gateway.keys(operation)) == 2
    assert len(set(gateway.keys(operation))) == 1
    assert await harness.types(order_id) == ["PaymentAuthorised", "PaymentCaptured"]
    assert await ledger(db, order_id) == [("authorise", 12_990, True), ("capture", 12_990, True)]
    assert await harness.order_stream_length(order_id) == 2


async def test_a_crash_after_the_void_voids_once(db: Database) -> None:
    gateway = CountingGateway(SimulatedGateway(db), crash_after={"void"})
    harness = Harness(db, gateway)
    order_id = uuid4()
    assert await harness.send(capture(order_id, "tok_permanent_error")) is Outcome.PROCESSED
    assert len(gateway.keys("void")) == 2
    assert await harness.types(order_id) == ["PaymentAuthorised", "PaymentAuthorisationVoided", "PaymentDeclined"]
    assert [row for row in await ledger(db, order_id) if row[0] == "void"] == [("void", 0, True)]


async def test_a_card_number_is_declined_without_calling_the_gateway(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, "4111 1111 1111 1111"))
    [event] = await harness.emitted(order_id)
    assert isinstance(event, PaymentDeclined)
    assert event.reason_code == "card_number_rejected"
    assert "4111" not in event.reason
    assert harness.gateway.calls == []


async def test_a_resent_command_is_answered_again_without_a_second_charge(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    # The saga's re-send: a new message (new id) for the same order.
    assert await harness.send(capture(order_id)) is Outcome.PROCESSED
    _, first, second = await harness.emitted(order_id)
    assert isinstance(second, PaymentCaptured)
    assert second == first
    assert len(harness.gateway.calls) == 2
    assert await harness.order_stream_length(order_id) == 2


async def test_a_resent_command_after_a_decline_is_declined_again(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, "tok_decline_fraud"))
    # Even with a good token now: the order's payment was decided.
    await harness.send(capture(order_id, "tok_approve"))
    first, second = await harness.emitted(order_id)
    assert isinstance(second, PaymentDeclined)
    assert second == first
    assert len(harness.gateway.calls) == 1


async def test_a_redelivered_message_has_no_second_effect(harness: Harness) -> None:
    order_id = uuid4()
    command = capture(order_id)
    raw = REGISTRY.wrap(command, producer="test").to_bytes()
    assert await harness.send(command, raw) is Outcome.PROCESSED
    assert await harness.send(command, raw) is Outcome.DUPLICATE
    assert len(await harness.emitted(order_id)) == 2
    assert len(harness.gateway.calls) == 2


async def test_an_invalid_command_is_dead_lettered(harness: Harness) -> None:
    order_id = uuid4()
    envelope = REGISTRY.wrap(capture(order_id), producer="test")
    bad = envelope.model_copy(update={"payload": {**envelope.payload, "amount_minor": -1}})
    assert await harness.send(capture(order_id), bad.to_bytes()) is Outcome.DEAD_LETTERED
    [(_, reason)] = harness.dead_letters.sent
    assert "amount_minor" in reason
    assert await harness.emitted(order_id) == []


async def test_tokens_and_card_numbers_never_reach_the_logs(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = LogCapture()
    logger: Any = structlog.wrap_logger(None, processors=[captured])
    for module in (payment_service.handlers, payment_service.adapters.simulated_gateway, oms_runtime.messaging):
        monkeypatch.setattr(module, "log", logger)
    await harness.send(capture(uuid4(), "tok_approve"))
    await harness.send(capture(uuid4(), "tok_decline_fraud"))
    await harness.send(capture(uuid4(), "4111111111111111"))
    await harness.send(capture(uuid4(), "4111-1111-1111-1111"))
    logged = repr(captured.entries)
    assert "payment captured" in logged
    assert "payment declined" in logged
    for secret in ("tok_approve", "tok_decline_fraud", "4111111111111111", "4111-1111"):
        assert secret not in logged


# ---------------------------------------------------------------- risk


RULES = RiskRules(
    review_above_minor={"EUR": 50_000},
    decline_above_minor={"EUR": 200_000},
    velocity_max=2,
    velocity_window_s=60,
    velocity_action="review",
    country_mismatch="review",
)


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def risky(db: Database, redis: Redis, rules: RiskRules = RULES) -> Harness:
    velocity = RedisVelocityCounter(redis, prefix=f"test-payment-velocity-{uuid4().hex}:")
    return Harness(db, CountingGateway(SimulatedGateway(db)), rules, velocity)


async def test_an_amount_above_the_review_limit_asks_for_a_review_and_authorises_nothing(
    db: Database, redis: Redis
) -> None:
    harness = risky(db, redis)
    order_id = uuid4()
    await harness.send(capture(order_id, amount_minor=50_001))
    [review] = await harness.emitted(order_id)
    assert isinstance(review, PaymentReviewRequired)
    assert review.rules == ["amount_review"]
    assert "50001" in review.reason
    assert harness.gateway.calls == []
    # The saga's re-send gets the same answer; after the review the capture goes through.
    await harness.send(capture(order_id, amount_minor=50_001))
    await harness.send(capture(order_id, amount_minor=50_001, reviewed=True))
    assert await harness.types(order_id) == [
        "PaymentReviewRequired",
        "PaymentReviewRequired",
        "PaymentAuthorised",
        "PaymentCaptured",
    ]
    assert await harness.order_stream_length(order_id) == 3


async def test_an_amount_above_the_decline_limit_is_declined_as_fraud_suspected(db: Database, redis: Redis) -> None:
    harness = risky(db, redis)
    order_id = uuid4()
    await harness.send(capture(order_id, amount_minor=200_001))
    [declined] = await harness.emitted(order_id)
    assert isinstance(declined, PaymentDeclined)
    assert declined.reason_code == "fraud_suspected"
    assert harness.gateway.calls == []
    # Limits are per currency: the same amount in another currency has no limit configured.
    other = uuid4()
    await harness.send(capture(other, amount_minor=200_001, currency="JPY"))
    assert await harness.types(other) == ["PaymentAuthorised", "PaymentCaptured"]


async def test_a_billing_country_other_than_the_shipping_country_asks_for_a_review(db: Database, redis: Redis) -> None:
    harness = risky(db, redis)
    mismatch, same = uuid4(), uuid4()
    await harness.send(capture(mismatch, billing_country="FR", shipping_country="DE"))
    await harness.send(capture(same, billing_country="DE", shipping_country="DE"))
    [review] = await harness.emitted(mismatch)
    assert isinstance(review, PaymentReviewRequired)
    assert review.rules == ["country_mismatch"]
    assert await harness.types(same) == ["PaymentAuthorised", "PaymentCaptured"]
    declining = risky(db, redis, RiskRules(country_mismatch="decline"))
    declined = uuid4()
    await declining.send(capture(declined, billing_country="FR", shipping_country="DE"))
    assert await declining.types(declined) == ["PaymentDeclined"]


async def test_velocity_counts_a_customers_attempts_in_redis_once_per_order(db: Database, redis: Redis) -> None:
    harness = risky(db, redis)
    first, second, third = uuid4(), uuid4(), uuid4()
    await harness.send(capture(first, customer_id="cust-fast"))
    await harness.send(capture(first, customer_id="cust-fast"))  # a re-send is not a new attempt
    await harness.send(capture(second, customer_id="cust-fast"))
    await harness.send(capture(uuid4(), customer_id="cust-other"))
    await harness.send(capture(third, customer_id="cust-fast"))
    assert (await harness.types(second))[-1] == "PaymentCaptured"
    [review] = await harness.emitted(third)
    assert isinstance(review, PaymentReviewRequired)
    assert review.rules == ["velocity"]


async def test_velocity_window_forgets_old_attempts(redis: Redis) -> None:
    now = [1_000.0]
    counter = RedisVelocityCounter(redis, clock=lambda: now[0], prefix=f"test-payment-velocity-{uuid4().hex}:")
    assert await counter.attempts("c", uuid4(), 60) == 1
    assert await counter.attempts("c", uuid4(), 60) == 2
    now[0] += 61
    assert await counter.attempts("c", uuid4(), 60) == 1


# ---------------------------------------------------------------- reconciliation read model


async def test_captures_and_refunds_are_recorded_for_reconciliation(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, amount_minor=10_000, currency="CHF", channel="phone"))
    await harness.send(refund(order_id, 2_500, "CHF", reason="line 1 returned"))
    await harness.send(capture(order_id, amount_minor=10_000, currency="CHF", channel="phone"))  # answered again
    async with harness.db.transaction() as session:
        rows = (
            await session.execute(
                select(payment_movements.c.kind, payment_movements.c.amount_minor, payment_movements.c.channel).where(
                    payment_movements.c.order_id == order_id
                )
            )
        ).all()
        assert sorted(rows) == [("captured", 10_000, "phone"), ("refunded", 2_500, "phone")]
        emitted = await harness.emitted(order_id)
        day = next(m for m in emitted if isinstance(m, PaymentCaptured))
        assert day is not None
        lines = await reconciliation(session, date_today(), date_today(), channel="phone", currency="CHF")
    assert lines
    assert all(line.net_minor == line.captured_minor - line.refunded_minor for line in lines)


def date_today() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


# ---------------------------------------------------------------- refunds


def refund(
    order_id: UUID, amount_minor: int = 12_990, currency: str = "EUR", reason: str = "cancelled by the customer"
) -> RefundPayment:
    return RefundPayment(
        order_id=order_id,
        payment_id=payment_id_for(order_id),
        amount_minor=amount_minor,
        currency=currency,
        reason=reason,
    )


async def ledger_refunds(db: Database, order_id: UUID) -> list[tuple[int, bool]]:
    """(amount, approved) of the gateway's refund rows for the order, in the order they were made."""
    return [(amount, ok) for op, amount, ok in await ledger(db, order_id) if op == "refund"]


async def refunds_answered(harness: Harness, order_id: UUID) -> list[Message]:
    return [m for m in await harness.emitted(order_id) if isinstance(m, PaymentRefunded | PaymentRefundFailed)]


async def test_a_full_refund_is_recorded_and_published(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefunded)
    assert (event.payment_id, event.amount_minor, event.currency) == (payment_id_for(order_id), 12_990, "EUR")
    assert harness.gateway.keys("refund") == [refund_idempotency_key(refund(order_id))]
    assert event.refund_id == refund_id_for(harness.gateway.keys("refund")[0])
    assert await harness.order_stream_length(order_id) == 3
    assert await ledger_refunds(harness.db, order_id) == [(12_990, True)]


async def test_two_partial_refunds_then_no_more(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    await harness.send(refund(order_id, 4_000, reason="line 1 returned"))
    await harness.send(refund(order_id, 8_990, reason="line 2 returned"))
    await harness.send(refund(order_id, 1, reason="goodwill"))
    first, second, third = await refunds_answered(harness, order_id)
    assert isinstance(first, PaymentRefunded)
    assert isinstance(second, PaymentRefunded)
    assert (first.amount_minor, second.amount_minor) == (4_000, 8_990)
    assert first.refund_id != second.refund_id
    assert isinstance(third, PaymentRefundFailed)
    assert third.reason_code == "exceeds_captured"
    assert len(harness.gateway.keys("refund")) == 2
    assert await ledger_refunds(harness.db, order_id) == [(4_000, True), (8_990, True)]
    assert await harness.order_stream_length(order_id) == 5


async def test_an_over_refund_is_refused_without_calling_the_gateway(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id, 12_991)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "exceeds_captured"
    assert "12991" in event.reason
    assert harness.gateway.keys("refund") == []
    assert harness.dead_letters.sent == []


async def test_a_resent_refund_is_answered_with_the_same_refund(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    await harness.send(refund(order_id))
    # The saga's re-send after a deadline: a new message (new id, no causation) with the same payload.
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    first, second = await refunds_answered(harness, order_id)
    assert isinstance(second, PaymentRefunded)
    assert second == first
    assert len(harness.gateway.keys("refund")) == 1
    assert await harness.order_stream_length(order_id) == 3
    assert await ledger_refunds(harness.db, order_id) == [(12_990, True)]


async def test_a_redelivered_refund_message_has_no_second_effect(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    command = refund(order_id)
    raw = REGISTRY.wrap(command, producer="test").to_bytes()
    assert await harness.send(command, raw) is Outcome.PROCESSED
    assert await harness.send(command, raw) is Outcome.DUPLICATE
    assert len(await refunds_answered(harness, order_id)) == 1
    assert len(harness.gateway.keys("refund")) == 1


async def test_a_declined_payment_is_not_refunded(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, "tok_decline_insufficient_funds"))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "not_captured"
    assert harness.gateway.keys("refund") == []
    assert await ledger_refunds(harness.db, order_id) == []


async def test_a_payment_never_captured_is_not_refunded(harness: Harness) -> None:
    order_id = uuid4()
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert (event.reason_code, event.payment_id) == ("not_captured", payment_id_for(order_id))
    assert harness.gateway.keys("refund") == []
    # The refusal is on the stream; a capture afterwards still works.
    await harness.send(capture(order_id))
    assert isinstance((await harness.emitted(order_id))[-1], PaymentCaptured)
    assert await harness.order_stream_length(order_id) == 3


async def test_a_refund_in_another_currency_is_refused(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    await harness.send(refund(order_id, 100, "USD"))
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "currency_mismatch"
    assert harness.gateway.keys("refund") == []


async def test_a_crash_after_the_refund_does_not_refund_twice(db: Database) -> None:
    gateway = CountingGateway(SimulatedGateway(db), crash_after={"refund"})
    harness = Harness(db, gateway)
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    # The first attempt's transaction rolled back after the gateway refunded; the retry asked again.
    assert len(gateway.keys("refund")) == 2
    assert gateway.keys("refund")[0] == gateway.keys("refund")[1]
    first, again = (r for op, r in gateway.results if op == "refund")
    assert first == again
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefunded)
    assert await ledger_refunds(db, order_id) == [(12_990, True)]
    assert await harness.order_stream_length(order_id) == 3


async def test_a_crash_then_dead_letter_then_resend_still_refunds_once(db: Database) -> None:
    # Two timeouts, then the gateway refunds but its answer is lost: the last attempt fails and the
    # message is dead-lettered with the refund made at the gateway but not recorded by the service.
    gateway = CountingGateway(SimulatedGateway(db), crash_after={"refund"}, unreachable={"refund": 2})
    harness = Harness(db, gateway)
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id)) is Outcome.DEAD_LETTERED
    assert await refunds_answered(harness, order_id) == []
    assert await ledger_refunds(db, order_id) == [(12_990, True)]
    # The saga re-sends after its deadline: the ledger's first answer is recorded, nothing more is refunded.
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefunded)
    assert event.refund_id == refund_id_for(refund_idempotency_key(refund(order_id)))
    assert await ledger_refunds(db, order_id) == [(12_990, True)]


async def test_a_gateway_without_answer_is_retried(db: Database) -> None:
    gateway = CountingGateway(SimulatedGateway(db), unreachable={"refund": 1})
    harness = Harness(db, gateway)
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    assert len(gateway.keys("refund")) == 2
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefunded)


async def test_a_gateway_refusal_is_answered_with_payment_refund_failed(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    # Someone refunded at the gateway directly (outside the OMS): the stream thinks all is left.
    reference = harness.gateway.result("capture").reference
    assert (await SimulatedGateway(harness.db).refund("manual-refund", reference, 10_000, "EUR")).approved
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "exceeds_captured"
    assert harness.dead_letters.sent == []
    assert await harness.order_stream_length(order_id) == 3
