"""The payment of one order: rules and state rebuilt from its event stream. Pure: no I/O.

One order has one payment. Its stream (`payment-<order_id>`) holds at most one decision,
`PaymentCaptured` or `PaymentDeclined`; once decided, the payment answers every later capture
request with that same decision and never charges again.

After a capture, the stream also holds the answers to refund requests: `PaymentRefunded` (money went
back; several partial refunds, never more than was captured in total) and `PaymentRefundFailed`.
A refund request is identified by its content (see `refund_idempotency_key`), so the same request
sent again is answered with the same `PaymentRefunded` and refunds nothing more.
"""

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID, uuid5

from oms_events import Message
from oms_events.messages import PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentRefundFailed, RefundPayment
from payment_service.domain.gateway import GatewayResult

STREAM_TYPE = "payment"

# Payment ids are derived from the order id, so a capture retried after a crash gets the same id.
_PAYMENT_ID_NAMESPACE = UUID("5b0f3c53-6a8e-4d0f-9b55-0e6f1f2c9a71")

# Refund ids are derived from the refund's idempotency key, so every answer to one request carries one id.
_REFUND_ID_NAMESPACE = UUID("c1d7a0e4-2f3b-4b8e-8a61-7d9e5f0b3c22")

INVALID_TOKEN = "invalid_token"

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


def idempotency_key(order_id: UUID) -> str:
    """The key under which the gateway sees this order's capture: one charge per order, ever."""
    return f"capture-{order_id}"


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


_SEPARATORS = re.compile(r"[\s-]")
_LONG_DIGIT_RUN = re.compile(r"\d{13,}")


def looks_like_card_number(token: str) -> bool:
    """True when the token holds a run of 13 or more digits (separators ignored), like a PAN.

    Tokens are opaque references issued by the gateway's card vault; a raw card number must never
    be sent, stored or logged by the OMS, so such a token is refused before any gateway call.
    """
    return _LONG_DIGIT_RUN.search(_SEPARATORS.sub("", token)) is not None


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

    @classmethod
    def rebuild(cls, order_id: UUID, events: Iterable[Message]) -> "Payment":
        payment = cls(order_id)
        for event in events:
            payment = payment.apply(event)
        return payment

    def apply(self, event: Message) -> "Payment":
        if isinstance(event, PaymentCaptured | PaymentDeclined):
            # The first decision stands; a stream never holds two, but replay must not flip it.
            return Payment(self.order_id, self.version + 1, self.decision or event, self.refunds)
        if isinstance(event, PaymentRefunded) and self.refund(event.refund_id) is None:
            return Payment(self.order_id, self.version + 1, self.decision, (*self.refunds, event))
        return Payment(self.order_id, self.version + 1, self.decision, self.refunds)

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

    def refuse_token(self, token: str) -> PaymentDeclined | None:
        """The decline for a token that must not reach the gateway, or None when it may."""
        if looks_like_card_number(token):
            return PaymentDeclined(
                order_id=self.order_id,
                payment_id=self.payment_id,
                reason_code=INVALID_TOKEN,
                reason="The payment token looks like a card number; send a token from the card vault instead.",
            )
        return None

    def decide(self, amount_minor: int, currency: str, result: GatewayResult) -> Decision:
        """The event that records the gateway's answer."""
        if self.decision is not None:
            raise ValueError(f"payment of order {self.order_id} is already decided")
        if result.approved:
            return PaymentCaptured(
                order_id=self.order_id,
                payment_id=self.payment_id,
                amount_minor=amount_minor,
                currency=currency,
                gateway_reference=result.reference,
            )
        return PaymentDeclined(
            order_id=self.order_id,
            payment_id=self.payment_id,
            reason_code=result.reason_code or "declined",
            reason=result.reason or "The payment was declined.",
        )

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
        )

    def _refuse(self, command: RefundPayment, reason_code: str, reason: str) -> PaymentRefundFailed:
        return PaymentRefundFailed(
            order_id=self.order_id, payment_id=command.payment_id, reason_code=reason_code, reason=reason
        )
