"""Use cases of payment-service: take an order's payment (risk check, authorise, capture) exactly once
per order, refund it, and read its history and the reconciliation report."""

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from oms_events import Message
from oms_events.messages import (
    CapturePayment,
    PaymentAuthorisationVoided,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentReviewRequired,
    RefundPayment,
)
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext
from payment_service.adapters.payment_store import PaymentStore
from payment_service.domain.gateway import GatewayResult, PaymentGateway, PermanentGatewayError
from payment_service.domain.payment import (
    GATEWAY_ERROR,
    AlreadyRefunded,
    GatewayRefund,
    Payment,
    RefundAnswer,
    idempotency_key,
)
from payment_service.domain.risk import FRAUD_SUSPECTED, RiskFacts, RiskOutcome, RiskRules, assess

log = get_logger(__name__)


class VelocityCounter(Protocol):
    async def attempts(self, customer_id: str, order_id: UUID, window_s: int) -> int: ...


class GatewayInconsistencyError(Exception):
    """The gateway's answers contradict each other (e.g. a failed capture that it says was captured):
    the message is retried and then dead-lettered, so that a human looks at it."""


class PaymentHandlers:
    def __init__(
        self,
        gateway: PaymentGateway,
        payments: PaymentStore,
        *,
        risk_rules: RiskRules | None = None,
        velocity: VelocityCounter | None = None,
    ) -> None:
        self._gateway = gateway
        self._payments = payments
        self._risk = risk_rules or RiskRules()
        self._velocity = velocity

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(CapturePayment, self.capture_payment)
        handlers.register(RefundPayment, self.refund_payment)
        return handlers

    async def _load(self, ctx: MessageContext, order_id: UUID) -> Payment:
        stored = await self._payments.load(ctx.session, order_id)
        return Payment.rebuild(order_id, (ctx.registry.decode(envelope) for envelope in stored))

    async def _record(self, ctx: MessageContext, payment: Payment, events: Sequence[Message], channel: str) -> None:
        # The events and the reconciliation rows of their captures and refunds, in one statement.
        await self._payments.record(ctx, payment.order_id, payment.version, events, channel)

    # ------------------------------------------------------------------ capture

    async def capture_payment(self, ctx: MessageContext, command: CapturePayment) -> None:
        """Risk check -> authorise -> capture; the capture failing for good voids the authorisation.

        Every reply is PaymentCaptured, PaymentDeclined or PaymentReviewRequired. The gateway is outside
        this transaction: its idempotency keys (order id + operation) make a retry after a crash, a
        redelivery or a re-send get the first answers back, never a second authorisation or charge.
        Never log the command itself: it carries the payment token.
        """
        payment = await self._load(ctx, command.order_id)
        if payment.decision is not None:
            # A re-sent command gets the answer the first one got, and charges nothing.
            await self._answer_again(ctx, command, payment.decision)
            return
        if payment.review is not None and not command.reviewed:
            # Still waiting for the review: the saga's re-send gets the same answer.
            await ctx.emit(payment.review)
            log.info("payment review answered again", payment_id=str(payment.payment_id))
            return
        refused = payment.refuse_token(command.payment_token)
        if refused is not None:
            # The token is neither logged nor sent anywhere: only the reason code is.
            await self._record(ctx, payment, [refused], command.channel or "unknown")
            log.warning("payment declined: the token looks like a card number", reason_code=refused.reason_code)
            return
        if not command.reviewed:
            stop = await self._risk_check(payment, command)
            if stop is not None:
                await self._record(ctx, payment, [stop], command.channel or "unknown")
                return
        events = await self._authorise_and_capture(payment, command)
        await self._record(ctx, payment, events, command.channel or "unknown")
        decision = events[-1]
        if isinstance(decision, PaymentCaptured):
            log.info(
                "payment captured",
                payment_id=str(decision.payment_id),
                amount_minor=decision.amount_minor,
                currency=decision.currency,
                gateway_reference=decision.gateway_reference,
            )
        elif isinstance(decision, PaymentDeclined):
            log.info("payment declined", payment_id=str(decision.payment_id), reason_code=decision.reason_code)

    async def _risk_check(
        self, payment: Payment, command: CapturePayment
    ) -> PaymentDeclined | PaymentReviewRequired | None:
        attempts = 1
        if self._velocity is not None and self._risk.velocity_max > 0:
            attempts = await self._velocity.attempts(
                command.customer_id, command.order_id, self._risk.velocity_window_s
            )
        assessment = assess(
            self._risk,
            RiskFacts(
                amount_minor=command.amount_minor,
                currency=command.currency,
                billing_country=command.billing_country,
                shipping_country=command.shipping_country,
                attempts_in_window=attempts,
            ),
        )
        if assessment.outcome is RiskOutcome.PASS:
            return None
        log.warning("risk check", outcome=assessment.outcome.value, rules=list(assessment.rules))
        if assessment.outcome is RiskOutcome.DECLINE:
            return payment.declined(FRAUD_SUSPECTED, f"Declined by the risk check: {assessment.reason}.")
        return payment.review_required(f"Review required by the risk check: {assessment.reason}.", assessment.rules)

    async def _authorise_and_capture(self, payment: Payment, command: CapturePayment) -> list[Message]:
        order_id = command.order_id
        try:
            answer = await self._gateway.authorise(
                idempotency_key(order_id, "authorise"), command.amount_minor, command.currency, command.payment_token
            )
        except PermanentGatewayError as exc:
            return [payment.declined(GATEWAY_ERROR, f"The gateway refused the payment: {exc.reason}")]
        authorised = payment.authorised(command.amount_minor, command.currency, answer)
        if isinstance(authorised, PaymentDeclined):
            return [authorised]
        why: str
        try:
            captured = await self._gateway.capture(
                idempotency_key(order_id, "capture"),
                authorised.gateway_reference,
                authorised.amount_minor,
                authorised.currency,
            )
            if captured.approved:
                return [authorised, payment.captured_event(authorised, captured, command.channel)]
            why = f"{captured.reason_code}: {captured.reason}"
        except PermanentGatewayError as exc:
            why = f"{exc.reason_code}: {exc.reason}"
        # The capture failed for good: lift the card's hold, then decline (the saga compensates).
        void = await self._gateway.void(idempotency_key(order_id, "void"), authorised.gateway_reference)
        if not void.approved and void.reason_code == "already_captured":
            raise GatewayInconsistencyError(
                f"the capture of {authorised.gateway_reference} failed ({why}), yet the gateway says it is captured"
            )
        voided, declined = payment.capture_failed(authorised, why, void)
        log.warning("capture failed; authorisation voided", voided=voided is not None, why=why)
        return [authorised, *([voided] if voided else []), declined]

    async def _answer_again(
        self, ctx: MessageContext, command: CapturePayment, decision: PaymentCaptured | PaymentDeclined
    ) -> None:
        if isinstance(decision, PaymentCaptured) and (decision.amount_minor, decision.currency) != (
            command.amount_minor,
            command.currency,
        ):
            log.warning(
                "capture re-sent with a different amount; answering with the captured one",
                payment_id=str(decision.payment_id),
                captured_minor=decision.amount_minor,
                captured_currency=decision.currency,
                requested_minor=command.amount_minor,
                requested_currency=command.currency,
            )
        await ctx.emit(decision)
        log.info("payment answered again", payment_id=str(decision.payment_id), answer=decision.message_type)

    # ------------------------------------------------------------------ refund

    async def refund_payment(self, ctx: MessageContext, command: RefundPayment) -> None:
        """Refunds (part of) a captured payment; every request gets PaymentRefunded or PaymentRefundFailed.

        Refusals (not captured, other currency, more than is left) are answers, not errors. Only a
        gateway that gives no answer (TransientGatewayError after the retries) raises, so that the
        runtime retries the message.
        """
        payment = await self._load(ctx, command.order_id)
        step = payment.plan_refund(command)
        if isinstance(step, AlreadyRefunded):
            # A re-sent request gets the answer the first one got, and refunds nothing.
            await ctx.emit(step.event)
            log.info(
                "refund answered again", payment_id=str(step.event.payment_id), refund_id=str(step.event.refund_id)
            )
            return
        answer: RefundAnswer
        gateway_reference = None
        if isinstance(step, GatewayRefund):
            # Outside this transaction, like the capture: the key makes a retry get the same answer.
            result: GatewayResult
            try:
                result = await self._gateway.refund(
                    step.idempotency_key, step.gateway_reference, step.amount_minor, step.currency
                )
            except PermanentGatewayError as exc:
                result = GatewayResult(False, "none", exc.reason_code, exc.reason)
            answer = payment.record_refund(step, result)
            gateway_reference = result.reference
        else:
            answer = step
        await self._record(ctx, payment, [answer], payment.channel)
        if isinstance(answer, PaymentRefunded):
            log.info(
                "payment refunded",
                payment_id=str(answer.payment_id),
                refund_id=str(answer.refund_id),
                amount_minor=answer.amount_minor,
                currency=answer.currency,
                gateway_reference=gateway_reference,
            )
        else:
            log.warning(
                "refund failed",
                payment_id=str(answer.payment_id),
                reason_code=answer.reason_code,
                amount_minor=command.amount_minor,
                currency=command.currency,
                gateway_reference=gateway_reference,
            )


__all__ = ["PaymentAuthorisationVoided", "PaymentHandlers", "VelocityCounter"]
