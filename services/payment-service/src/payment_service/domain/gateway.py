"""The port to a payment gateway (card acquirer / PSP). Pure: the contract only, no I/O.

A payment goes authorise -> capture (full or partial) -> refund (full or partial, several times, never
more than was captured); an authorisation that is not captured is voided. Every operation carries an
idempotency key: the same key gives the same answer and never a second movement of money.
"""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GatewayResult:
    """The gateway's answer to one operation.

    `reference` is the gateway's id of the operation (declines and refusals have one too). When not
    approved, `reason_code` is machine-readable (`insufficient_funds`, `suspected_fraud`,
    `invalid_token`, `exceeds_captured`, ...) and `reason` is in plain words.
    """

    approved: bool
    reference: str
    reason_code: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if not self.approved and not self.reason_code:
            raise ValueError("a declined result needs a reason_code")


class GatewayError(Exception):
    """The gateway gave no usable answer. Subclasses say whether trying again can help."""


class TransientGatewayError(GatewayError):
    """No answer (timeout, connection lost, 5xx): nothing is known about the operation. Retry it with the
    same idempotency key; the gateway then answers with what it did, if it did anything."""


class PermanentGatewayError(GatewayError):
    """The gateway refused the request itself (malformed, not allowed for this account, processor error
    it will not recover from): retrying the same request cannot help."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(f"{reason_code}: {reason}")
        self.reason_code = reason_code
        self.reason = reason


class PaymentGateway(Protocol):
    async def authorise(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        """Reserves `amount_minor` of `currency` on the tokenised card. Approved: `reference` names the
        authorisation for the capture or void. A decline is a result with `approved=False`."""
        ...

    async def capture(
        self, idempotency_key: str, authorisation_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        """Takes `amount_minor` (all or part of what was authorised) of the authorisation; once.
        Approved: `reference` names the capture, the handle for refunds."""
        ...

    async def void(self, idempotency_key: str, authorisation_reference: str) -> GatewayResult:
        """Cancels an authorisation that was not captured, so the card's hold is lifted."""
        ...

    async def refund(
        self, idempotency_key: str, capture_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        """Refunds `amount_minor` of `currency` of the capture. Several partial refunds are allowed, never
        more than was captured in total. A refusal (capture unknown, other currency, more than is left)
        is a result with `approved=False` and a `reason_code`."""
        ...
