"""The payment of one order: rules and state rebuilt from its event stream. Pure: no I/O.

One order has one payment. Its stream (`payment-<order_id>`) holds at most one decision,
`PaymentCaptured` or `PaymentDeclined`; once decided, the payment answers every later capture
request with that same decision and never charges again. Before the decision it may hold a
`PaymentReviewRequired` (the risk check asked for a human; a capture marked `reviewed` goes on), and
with it the `PaymentAuthorised` that preceded the capture and, when the capture failed for good, the
`PaymentAuthorisationVoided`.

After a capture, the stream also holds the answers to refund requests: `PaymentRefunded` (money went
back; several partial refunds, never more than was captured in total) and `PaymentRefundFailed`.
A refund request is identified by its content (see `refund_idempotency_key`), so the same request
sent again is answered with the same `PaymentRefunded` and refunds nothing more.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from uuid import UUID, uuid5

from oms_events import Message
from oms_events.messages import (
    PaymentAuthorisationVoided,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentReviewRequired,
    RefundPayment,
)
from oms_events.values import looks_like_card_number
from payment_service.domain.gateway import GatewayResult

STREAM_TYPE = "payment"

# Payment ids are derived from the order id, so a capture retried after a crash gets the same id.
_PAYMENT_ID_NAMESPACE = UUID("5b0f3c53-6a8e-4d0f-9b55-0e6f1f2c9a71")

# Refund ids are derived from the refund's idempotency key, so every answer to one request carries one id.
_REFUND_ID_NAMESPACE = UUID("c1d7a0e4-2f3b-4b8e-8a61-7d9e5f0b3c22")

CARD_NUMBER_REJECTED = "card_number_rejected"
"""PaymentDeclined.reason_code of a command whose token looks like a card number."""
CAPTURE_FAILED = "capture_failed"
"""PaymentDeclined.reason_code when the authorisation was approved but its capture failed for good."""
GATEWAY_ERROR = "gateway_error"
"""PaymentDeclined.reason_code when the gateway refused the authorisation request itself."""

# Why a refund was refused (PaymentRefundFailed.reason_code). The gateway may refuse with these too.
NOT_CAPTURED = "not_captured"
CURRENCY_MISMATCH = "currency_mismatch"
EXCEEDS_CAPTURED = "exceeds_captured"
UNKNOWN_PAYMENT = "unknown_payment"
INVALID_AMOUNT = "invalid_amount"
REFUND_REFUSED = "refund_refused"  # the gateway refused without saying why

Decision = PaymentCaptured | PaymentDeclined


def stream_id(order_id: UUID) -> str:
    return f"payment-{order_id}"


def payment_id_for(order_id: UUID) -> UUID:
    return uuid5(_PAYMENT_ID_NAMESPACE, f"payment-{order_id}")


def idempotency_key(order_id: UUID, operation: str = "capture") -> str:
    """The key under which the gateway sees this order's `operation` (authorise, capture, void).

    One order has one payment, so the order id plus the operation names it exactly: a retry, a
    redelivered command and the saga's re-send of an overdue command (a new message with a new id,
    see the README) all reach the gateway under the same key, and it never authorises or charges twice.
    """
    return f"{operation}-{order_id}"


def refund_idempotency_key(command: RefundPayment) -> str:
    """The key under which the gateway sees one refund request: the same request never refunds twice.

    The contract's RefundPayment carries no request id, and the saga re-sends an overdue command as
    a new message (new message id, no causation id) with the very same payload. So a request is
    identified by its content: order, payment, amount, currency and reason. A re-sent or redelivered
    request maps to the same key (and the gateway's ledger answers it again); two partial refunds
    are two requests as long as they differ in amount or reason. Two refunds of the same amount of
    one payment must therefore carry different reasons (e.g. name the returned line).
    """
    fingerprint = json.dumps(
        [str(command.payment_id), command.amount_minor, command.currency, command.reason], separators=(",", ":")
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:40]
    return f"refund-{command.order_id}-{digest}"


def refund_id_for(idempotency_key: str) -> UUID:
    return uuid5(_REFUND_ID_NAMESPACE, idempotency_key)


@dataclass(frozen=True)
class AlreadyRefunded:
    """The request was refunded before: answer with that same event, refund nothing."""

    event: PaymentRefunded


@dataclass(frozen=True)
class GatewayRefund:
    """The request passed the payment's rules: ask the gateway to refund."""

    idempotency_key: str
    refund_id: UUID
    gateway_reference: str
    amount_minor: int
    currency: str


RefundStep = AlreadyRefunded | GatewayRefund | PaymentRefundFailed
RefundAnswer = PaymentRefunded | PaymentRefundFailed


@dataclass(frozen=True)
class Payment:
    """The state of one order's payment, folded from its events."""

    order_id: UUID
    version: int = 0
    decision: Decision | None = None
    refunds: tuple[PaymentRefunded, ...] = ()
    review: PaymentReviewRequired | None = None
    authorisation: PaymentAuthorised | None = None

    @classmethod
    def rebuild(cls, order_id: UUID, events: Iterable[Message]) -> "Payment":
        payment = cls(order_id)
        for event in events:
            payment = payment.apply(event)
        return payment

    def apply(self, event: Message) -> "Payment":
        changed = replace(self, version=self.version + 1)
        if isinstance(event, PaymentCaptured | PaymentDeclined):
            # The first decision stands; a stream never holds two, but replay must not flip it.
            return replace(changed, decision=self.decision or event)
        if isinstance(event, PaymentRefunded) and self.refund(event.refund_id) is None:
            return replace(changed, refunds=(*self.refunds, event))
        if isinstance(event, PaymentReviewRequired):
            return replace(changed, review=self.review or event)
        if isinstance(event, PaymentAuthorised):
            return replace(changed, authorisation=self.authorisation or event)
        return changed

    @property
    def payment_id(self) -> UUID:
        return self.decision.payment_id if self.decision else payment_id_for(self.order_id)

    @property
    def captured(self) -> PaymentCaptured | None:
        return self.decision if isinstance(self.decision, PaymentCaptured) else None

    @property
    def refunded_minor(self) -> int:
        return sum(r.amount_minor for r in self.refunds)

    @property
    def refundable_minor(self) -> int:
        """What may still be refunded: captured minus refunded (0 when nothing was captured)."""
        return self.captured.amount_minor - self.refunded_minor if self.captured else 0

    def refund(self, refund_id: UUID) -> PaymentRefunded | None:
        return next((r for r in self.refunds if r.refund_id == refund_id), None)

    @property
    def channel(self) -> str:
        captured = self.captured
        return (captured.channel if captured else None) or "unknown"

    def refuse_token(self, token: str) -> PaymentDeclined | None:
        """The decline for a token that must not reach the gateway, or None when it may."""
        if looks_like_card_number(token):
            return self.declined(
                CARD_NUMBER_REJECTED,
                "The payment token looks like a card number; card data is never accepted. "
                "Send a token from the card vault instead.",
            )
        return None

    def declined(self, reason_code: str, reason: str) -> PaymentDeclined:
        if self.decision is not None:
            raise ValueError(f"payment of order {self.order_id} is already decided")
        return PaymentDeclined(
            order_id=self.order_id, payment_id=self.payment_id, reason_code=reason_code, reason=reason
        )

    def review_required(self, reason: str, rules: Iterable[str]) -> PaymentReviewRequired:
        return PaymentReviewRequired(
            order_id=self.order_id,
            payment_id=self.payment_id,
            reason_code="risk_review",
            reason=reason,
            rules=list(rules),
        )

    def authorised(
        self, amount_minor: int, currency: str, result: GatewayResult
    ) -> PaymentAuthorised | PaymentDeclined:
        """The event that records the gateway's answer to the authorisation."""
        if result.approved:
            return PaymentAuthorised(
                order_id=self.order_id,
                payment_id=self.payment_id,
                amount_minor=amount_minor,
                currency=currency,
                gateway_reference=result.reference,
            )
        return self.declined(result.reason_code or "declined", result.reason or "The payment was declined.")

    def captured_event(
        self, authorisation: PaymentAuthorised, result: GatewayResult, channel: str | None
    ) -> PaymentCaptured:
        if not result.approved:
            raise ValueError("a refused capture is not a capture")
        return PaymentCaptured(
            order_id=self.order_id,
            payment_id=self.payment_id,
            amount_minor=authorisation.amount_minor,
            currency=authorisation.currency,
            gateway_reference=result.reference,
            channel=channel,
        )

    def capture_failed(
        self, authorisation: PaymentAuthorised, why: str, void: GatewayResult
    ) -> tuple[PaymentAuthorisationVoided | None, PaymentDeclined]:
        """The capture failed for good: the authorisation was voided (when the gateway agreed) and the
        payment is declined, so that the saga compensates. Nothing was taken from the card."""
        voided = (
            PaymentAuthorisationVoided(
                order_id=self.order_id,
                payment_id=self.payment_id,
                gateway_reference=authorisation.gateway_reference,
                reason_code=CAPTURE_FAILED,
            )
            if void.approved
            else None
        )
        return voided, self.declined(CAPTURE_FAILED, f"The payment could not be captured: {why}")

    def plan_refund(self, command: RefundPayment) -> RefundStep:
        """What to do with a refund request: answer again, refuse, or ask the gateway.

        A request refunded before is answered again first, so a re-sent full refund is not refused
        as exceeding what is left.
        """
        key = refund_idempotency_key(command)
        refund_id = refund_id_for(key)
        earlier = self.refund(refund_id)
        if earlier is not None:
            return AlreadyRefunded(earlier)
        captured = self.captured
        if command.payment_id != self.payment_id:
            return self._refuse(
                command, UNKNOWN_PAYMENT, f"Payment {command.payment_id} is not the payment of this order."
            )
        if captured is None:
            if isinstance(self.decision, PaymentDeclined):
                why = f"The payment was declined ({self.decision.reason_code}); nothing was captured to refund."
            else:
                why = "The payment of this order was never captured; there is nothing to refund."
            return self._refuse(command, NOT_CAPTURED, why)
        if command.currency != captured.currency:
            return self._refuse(
                command,
                CURRENCY_MISMATCH,
                f"The payment was captured in {captured.currency}; a refund in {command.currency} is not possible.",
            )
        if command.amount_minor <= 0:
            return self._refuse(command, INVALID_AMOUNT, "A refund must be of more than 0.")
        if command.amount_minor > self.refundable_minor:
            return self._refuse(
                command,
                EXCEEDS_CAPTURED,
                f"A refund of {command.amount_minor} {command.currency} exceeds what is left to refund: "
                f"{self.refundable_minor} of {captured.amount_minor} captured.",
            )
        return GatewayRefund(
            idempotency_key=key,
            refund_id=refund_id,
            gateway_reference=captured.gateway_reference,
            amount_minor=command.amount_minor,
            currency=command.currency,
        )

    def record_refund(self, request: GatewayRefund, result: GatewayResult) -> RefundAnswer:
        """The event that records the gateway's answer to a refund."""
        if result.approved:
            return PaymentRefunded(
                order_id=self.order_id,
                payment_id=self.payment_id,
                refund_id=request.refund_id,
                amount_minor=request.amount_minor,
                currency=request.currency,
            )
        return PaymentRefundFailed(
            order_id=self.order_id,
            payment_id=self.payment_id,
            reason_code=result.reason_code or REFUND_REFUSED,
            reason=result.reason or "The gateway refused the refund.",
            amount_minor=request.amount_minor,
            currency=request.currency,
        )

    def _refuse(self, command: RefundPayment, reason_code: str, reason: str) -> PaymentRefundFailed:
        return PaymentRefundFailed(
            order_id=self.order_id,
            payment_id=command.payment_id,
            reason_code=reason_code,
            reason=reason,
            amount_minor=command.amount_minor,
            currency=command.currency,
        )
