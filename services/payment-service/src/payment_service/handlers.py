"""Use cases of payment-service: capture an order's payment exactly once per order, and refund it."""

from uuid import UUID

from oms_events.messages import CapturePayment, PaymentCaptured, PaymentRefunded, RefundPayment
from oms_runtime.eventstore import EventStore
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext
from payment_service.domain.gateway import PaymentGateway
from payment_service.domain.payment import (
    STREAM_TYPE,
    AlreadyRefunded,
    Decision,
    GatewayRefund,
    Payment,
    RefundAnswer,
    idempotency_key,
    stream_id,
)

log = get_logger(__name__)


class PaymentHandlers:
    def __init__(self, gateway: PaymentGateway, store: EventStore) -> None:
        self._gateway = gateway
        self._store = store

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(CapturePayment, self.capture_payment)
        handlers.register(RefundPayment, self.refund_payment)
        return handlers

    async def _load(self, ctx: MessageContext, order_id: UUID) -> Payment:
        stored = await self._store.load(ctx.session, stream_id(order_id))
        return Payment.rebuild(order_id, (ctx.registry.decode(e.envelope) for e in stored))

    async def capture_payment(self, ctx: MessageContext, command: CapturePayment) -> None:
        # Never log the command itself: it carries the payment token.
        payment = await self._load(ctx, command.order_id)
        if payment.decision is not None:
            # A re-sent command gets the answer the first one got, and charges nothing.
            await self._answer_again(ctx, command, payment.decision)
            return
        decision: Decision | None = payment.refuse_token(command.payment_token)
        if decision is None:
            # The gateway is outside this transaction; its idempotency key makes a retry after a
            # crash (or a lost race with another consumer) get the same answer, not a second charge.
            result = await self._gateway.capture(
                idempotency_key(command.order_id), command.amount_minor, command.currency, command.payment_token
            )
            decision = payment.decide(command.amount_minor, command.currency, result)
        await ctx.record(self._store, stream_id(command.order_id), STREAM_TYPE, payment.version, [decision])
        if isinstance(decision, PaymentCaptured):
            log.info(
                "payment captured",
                payment_id=str(decision.payment_id),
                amount_minor=decision.amount_minor,
                currency=decision.currency,
                gateway_reference=decision.gateway_reference,
            )
        else:
            log.info("payment declined", payment_id=str(decision.payment_id), reason_code=decision.reason_code)

    async def _answer_again(self, ctx: MessageContext, command: CapturePayment, decision: Decision) -> None:
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

    async def refund_payment(self, ctx: MessageContext, command: RefundPayment) -> None:
        """Refunds (part of) a captured payment; every request gets PaymentRefunded or PaymentRefundFailed.

        Refusals (not captured, other currency, more than is left) are answers, not errors. Only a
        gateway that gives no answer (GatewayError) raises, so that the runtime retries the message.
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
            result = await self._gateway.refund(
                step.idempotency_key, step.gateway_reference, step.amount_minor, step.currency
            )
            answer = payment.record_refund(step, result)
            gateway_reference = result.reference
        else:
            answer = step
        await ctx.record(self._store, stream_id(command.order_id), STREAM_TYPE, payment.version, [answer])
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
