"""The payment of one order: rules and state rebuilt from its event stream. Pure: no I/O.

One order has one payment. Its stream (`payment-<order_id>`) holds at most one decision,
`PaymentCaptured` or `PaymentDeclined`; once decided, the payment answers every later capture
request with that same decision and never charges again.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID, uuid5

from oms_events import Message
from oms_events.messages import PaymentCaptured, PaymentDeclined
from payment_service.domain.gateway import GatewayResult

STREAM_TYPE = "payment"

# Payment ids are derived from the order id, so a capture retried after a crash gets the same id.
_PAYMENT_ID_NAMESPACE = UUID("5b0f3c53-6a8e-4d0f-9b55-0e6f1f2c9a71")

INVALID_TOKEN = "invalid_token"

Decision = PaymentCaptured | PaymentDeclined


def stream_id(order_id: UUID) -> str:
    return f"payment-{order_id}"


def payment_id_for(order_id: UUID) -> UUID:
    return uuid5(_PAYMENT_ID_NAMESPACE, f"payment-{order_id}")


def idempotency_key(order_id: UUID) -> str:
    """The key under which the gateway sees this order's capture: one charge per order, ever."""
    return f"capture-{order_id}"


_SEPARATORS = re.compile(r"[\s-]")
_LONG_DIGIT_RUN = re.compile(r"\d{13,}")


def looks_like_card_number(token: str) -> bool:
    """True when the token holds a run of 13 or more digits (separators ignored), like a PAN.

    Tokens are opaque references issued by the gateway's card vault; a raw card number must never
    be sent, stored or logged by the OMS, so such a token is refused before any gateway call.
    """
    return _LONG_DIGIT_RUN.search(_SEPARATORS.sub("", token)) is not None


@dataclass(frozen=True)
class Payment:
    """The state of one order's payment, folded from its events."""

    order_id: UUID
    version: int = 0
    decision: Decision | None = None

    @classmethod
    def rebuild(cls, order_id: UUID, events: Iterable[Message]) -> "Payment":
        payment = cls(order_id)
        for event in events:
            payment = payment.apply(event)
        return payment

    def apply(self, event: Message) -> "Payment":
        if isinstance(event, PaymentCaptured | PaymentDeclined):
            # The first decision stands; a stream never holds two, but replay must not flip it.
            return Payment(self.order_id, self.version + 1, self.decision or event)
        return Payment(self.order_id, self.version + 1, self.decision)

    @property
    def payment_id(self) -> UUID:
        return self.decision.payment_id if self.decision else payment_id_for(self.order_id)

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
