"""CapturePayment and RefundPayment end to end through the runtime's message processor, on a real PostgreSQL.

Each test run uses a throwaway schema; Kafka is not involved (the outbox is read directly).
"""

from typing import Any
from uuid import UUID, uuid4

import pytest
import structlog
from sqlalchemy import func, select
from structlog.testing import LogCapture

import oms_runtime.messaging
import payment_service.adapters.simulated_gateway
import payment_service.handlers
from oms_events import default_registry
from oms_events.messages import (
    CapturePayment,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    RefundPayment,
)
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.messaging import Outcome
from oms_runtime.testing import HandlerHarness
from payment_service.adapters.simulated_gateway import SimulatedGateway
from payment_service.adapters.tables import gateway_charges, gateway_refunds
from payment_service.domain.gateway import GatewayError, GatewayResult, PaymentGateway
from payment_service.domain.payment import payment_id_for, refund_id_for, refund_idempotency_key
from payment_service.handlers import PaymentHandlers

REGISTRY = default_registry()


class CountingGateway:
    """Wraps a gateway; counts calls and can fail once *after* the charge (or refund) went through."""

    def __init__(
        self,
        inner: PaymentGateway,
        *,
        fail_after_first_charge: bool = False,
        fail_after_first_refund: bool = False,
        unreachable_for_refunds: int = 0,
    ) -> None:
        self._inner = inner
        self._fail = fail_after_first_charge
        self._fail_refund = fail_after_first_refund
        self._unreachable = unreachable_for_refunds
        self.calls: list[str] = []
        self.results: list[GatewayResult] = []
        self.refund_calls: list[str] = []
        self.refund_results: list[GatewayResult] = []

    async def capture(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        self.calls.append(idempotency_key)
        result = await self._inner.capture(idempotency_key, amount_minor, currency, token)
        self.results.append(result)
        if self._fail:
            self._fail = False
            raise ConnectionResetError("connection lost after the gateway answered")
        return result

    async def refund(
        self, idempotency_key: str, gateway_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        self.refund_calls.append(idempotency_key)
        if self._unreachable:
            self._unreachable -= 1
            raise GatewayError("gateway timed out")
        result = await self._inner.refund(idempotency_key, gateway_reference, amount_minor, currency)
        self.refund_results.append(result)
        if self._fail_refund:
            self._fail_refund = False
            raise ConnectionResetError("connection lost after the gateway refunded")
        return result


class Harness(HandlerHarness):
    def __init__(self, db: Database, gateway: CountingGateway) -> None:
        super().__init__(db, "payment-service", PaymentHandlers(gateway, EventStore()).handler_map(), REGISTRY)
        self.gateway = gateway

    async def order_stream_length(self, order_id: UUID) -> int:
        return await self.stream_length(f"payment-{order_id}")


@pytest.fixture
def harness(db: Database) -> Harness:
    return Harness(db, CountingGateway(SimulatedGateway(db)))


def capture(
    order_id: UUID, token: str = "tok_approve", amount_minor: int = 12_990, currency: str = "EUR"
) -> CapturePayment:
    return CapturePayment(
        order_id=order_id, customer_id="cust-1", amount_minor=amount_minor, currency=currency, payment_token=token
    )


async def test_an_approved_capture_is_recorded_and_published(harness: Harness) -> None:
    order_id = uuid4()
    assert await harness.send(capture(order_id)) is Outcome.PROCESSED
    [event] = await harness.emitted(order_id)
    assert isinstance(event, PaymentCaptured)
    assert event.payment_id == payment_id_for(order_id)
    assert (event.amount_minor, event.currency) == (12_990, "EUR")
    assert event.gateway_reference == harness.gateway.results[0].reference
    assert harness.gateway.calls == [f"capture-{order_id}"]
    assert await harness.order_stream_length(order_id) == 1


@pytest.mark.parametrize(
    ("token", "reason_code"),
    [
        ("tok_decline_insufficient_funds", "insufficient_funds"),
        ("tok_decline_fraud", "suspected_fraud"),
        ("tok_no_such_card", "invalid_token"),
    ],
)
async def test_declines_carry_the_reason(harness: Harness, token: str, reason_code: str) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, token))
    [event] = await harness.emitted(order_id)
    assert isinstance(event, PaymentDeclined)
    assert event.reason_code == reason_code
    assert event.payment_id == payment_id_for(order_id)
    assert await harness.order_stream_length(order_id) == 1


async def test_a_card_number_is_declined_without_calling_the_gateway(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, "4111 1111 1111 1111"))
    [event] = await harness.emitted(order_id)
    assert isinstance(event, PaymentDeclined)
    assert event.reason_code == "invalid_token"
    assert harness.gateway.calls == []


async def test_a_resent_command_is_answered_again_without_a_second_charge(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    # The saga's retry: a new message (new id) for the same order.
    assert await harness.send(capture(order_id)) is Outcome.PROCESSED
    first, second = await harness.emitted(order_id)
    assert isinstance(second, PaymentCaptured)
    assert second == first
    assert len(harness.gateway.calls) == 1
    assert await harness.order_stream_length(order_id) == 1


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
    assert len(await harness.emitted(order_id)) == 1
    assert len(harness.gateway.calls) == 1


async def test_a_crash_after_the_charge_does_not_charge_twice(db: Database) -> None:
    gateway = CountingGateway(SimulatedGateway(db), fail_after_first_charge=True)
    harness = Harness(db, gateway)
    order_id = uuid4()
    assert await harness.send(capture(order_id)) is Outcome.PROCESSED
    # The first attempt's transaction rolled back after the gateway charged; the retry asked again.
    assert len(gateway.calls) == 2
    assert gateway.results[0] == gateway.results[1]
    [event] = await harness.emitted(order_id)
    assert isinstance(event, PaymentCaptured)
    assert event.gateway_reference == gateway.results[0].reference
    async with db.transaction() as session:
        charges = await session.scalar(
            select(func.count())
            .select_from(gateway_charges)
            .where(gateway_charges.c.idempotency_key == f"capture-{order_id}")
        )
    assert charges == 1


async def test_an_invalid_command_is_dead_lettered(harness: Harness) -> None:
    order_id = uuid4()
    envelope = REGISTRY.wrap(capture(order_id), producer="test")
    bad = envelope.model_copy(update={"payload": {**envelope.payload, "amount_minor": -1}})
    assert await harness.send(capture(order_id), bad.to_bytes()) is Outcome.DEAD_LETTERED
    [(_, reason)] = harness.dead_letters.sent
    assert "amount_minor" in reason
    assert await harness.emitted(order_id) == []


async def test_tokens_never_reach_the_logs(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = LogCapture()
    logger: Any = structlog.wrap_logger(None, processors=[captured])
    for module in (payment_service.handlers, payment_service.adapters.simulated_gateway, oms_runtime.messaging):
        monkeypatch.setattr(module, "log", logger)
    await harness.send(capture(uuid4(), "tok_approve"))
    await harness.send(capture(uuid4(), "tok_decline_fraud"))
    await harness.send(capture(uuid4(), "4111111111111111"))
    logged = repr(captured.entries)
    assert "payment captured" in logged
    assert "payment declined" in logged
    for secret in ("tok_approve", "tok_decline_fraud", "4111111111111111"):
        assert secret not in logged


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
    async with db.transaction() as session:
        rows = await session.execute(
            select(gateway_refunds.c.amount_minor, gateway_refunds.c.result)
            .where(gateway_refunds.c.idempotency_key.startswith(f"refund-{order_id}-"))
            .order_by(gateway_refunds.c.created_at)
        )
        return [(r.amount_minor, bool(r.result["approved"])) for r in rows]


async def refunds_answered(harness: Harness, order_id: UUID) -> list[PaymentRefunded | PaymentRefundFailed]:
    return [m for m in await harness.emitted(order_id) if isinstance(m, PaymentRefunded | PaymentRefundFailed)]


async def test_a_full_refund_is_recorded_and_published(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefunded)
    assert (event.payment_id, event.amount_minor, event.currency) == (payment_id_for(order_id), 12_990, "EUR")
    assert harness.gateway.refund_calls == [refund_idempotency_key(refund(order_id))]
    assert event.refund_id == refund_id_for(harness.gateway.refund_calls[0])
    assert await harness.order_stream_length(order_id) == 2
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
    assert len(harness.gateway.refund_calls) == 2
    assert await ledger_refunds(harness.db, order_id) == [(4_000, True), (8_990, True)]
    assert await harness.order_stream_length(order_id) == 4


async def test_an_over_refund_is_refused_without_calling_the_gateway(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id, 12_991)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "exceeds_captured"
    assert "12991" in event.reason
    assert harness.gateway.refund_calls == []
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
    assert len(harness.gateway.refund_calls) == 1
    assert await harness.order_stream_length(order_id) == 2
    assert await ledger_refunds(harness.db, order_id) == [(12_990, True)]


async def test_a_redelivered_refund_message_has_no_second_effect(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    command = refund(order_id)
    raw = REGISTRY.wrap(command, producer="test").to_bytes()
    assert await harness.send(command, raw) is Outcome.PROCESSED
    assert await harness.send(command, raw) is Outcome.DUPLICATE
    assert len(await refunds_answered(harness, order_id)) == 1
    assert len(harness.gateway.refund_calls) == 1


async def test_a_declined_payment_is_not_refunded(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id, "tok_decline_insufficient_funds"))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "not_captured"
    assert harness.gateway.refund_calls == []
    assert await ledger_refunds(harness.db, order_id) == []


async def test_a_payment_never_captured_is_not_refunded(harness: Harness) -> None:
    order_id = uuid4()
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert (event.reason_code, event.payment_id) == ("not_captured", payment_id_for(order_id))
    assert harness.gateway.refund_calls == []
    # The refusal is on the stream; a capture afterwards still works.
    await harness.send(capture(order_id))
    assert isinstance((await harness.emitted(order_id))[-1], PaymentCaptured)
    assert await harness.order_stream_length(order_id) == 2


async def test_a_refund_in_another_currency_is_refused(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    await harness.send(refund(order_id, 100, "USD"))
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "currency_mismatch"
    assert harness.gateway.refund_calls == []


async def test_a_crash_after_the_refund_does_not_refund_twice(db: Database) -> None:
    gateway = CountingGateway(SimulatedGateway(db), fail_after_first_refund=True)
    harness = Harness(db, gateway)
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    # The first attempt's transaction rolled back after the gateway refunded; the retry asked again.
    assert len(gateway.refund_calls) == 2
    assert gateway.refund_calls[0] == gateway.refund_calls[1]
    assert gateway.refund_results[0] == gateway.refund_results[1]
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefunded)
    assert await ledger_refunds(db, order_id) == [(12_990, True)]
    assert await harness.order_stream_length(order_id) == 2


async def test_a_crash_then_dead_letter_then_resend_still_refunds_once(db: Database) -> None:
    # Two timeouts, then the gateway refunds but its answer is lost: the last attempt fails and the
    # message is dead-lettered with the refund made at the gateway but not recorded by the service.
    gateway = CountingGateway(SimulatedGateway(db), fail_after_first_refund=True, unreachable_for_refunds=2)
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
    gateway = CountingGateway(SimulatedGateway(db), unreachable_for_refunds=1)
    harness = Harness(db, gateway)
    order_id = uuid4()
    await harness.send(capture(order_id))
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    assert len(gateway.refund_calls) == 2
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefunded)


async def test_a_gateway_refusal_is_answered_with_payment_refund_failed(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(capture(order_id))
    # Someone refunded at the gateway directly (outside the OMS): the stream thinks all is left.
    reference = harness.gateway.results[0].reference
    assert (await SimulatedGateway(harness.db).refund("manual-refund", reference, 10_000, "EUR")).approved
    assert await harness.send(refund(order_id)) is Outcome.PROCESSED
    [event] = await refunds_answered(harness, order_id)
    assert isinstance(event, PaymentRefundFailed)
    assert event.reason_code == "exceeds_captured"
    assert harness.dead_letters.sent == []
    assert await harness.order_stream_length(order_id) == 2
