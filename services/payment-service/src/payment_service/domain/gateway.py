"""The port to a payment gateway (card acquirer / PSP). Pure: the contract only, no I/O."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GatewayResult:
    """The gateway's answer to one capture or one refund.

    `reference` is the gateway's id of the attempt (declines and refused refunds have one too). On a
    decline or a refused refund, `reason_code` is machine-readable (`insufficient_funds`,
    `suspected_fraud`, `invalid_token`, `exceeds_captured`, ...) and `reason` is in plain words.
    """

    approved: bool
    reference: str
    reason_code: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if not self.approved and not self.reason_code:
            raise ValueError("a declined result needs a reason_code")


class GatewayError(Exception):
    """The gateway could not give an answer (unreachable, timed out, refused the request).

    Nothing is known about the charge or refund: it must be retried with the same idempotency key.
    A gateway that *did* answer "no, never" (a permanent refusal) returns a GatewayResult with
    `approved=False` instead, so that the request is answered rather than retried.
    """


class PaymentGateway(Protocol):
    async def capture(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        """Authorises and captures `amount_minor` of `currency` on the tokenised card.

        Idempotent by `idempotency_key`: the same key gives the same result and never a second charge.
        Raises GatewayError when there is no answer.
        """
        ...

    async def refund(
        self, idempotency_key: str, gateway_reference: str, amount_minor: int, currency: str
    ) -> GatewayResult:
        """Refunds `amount_minor` of `currency` of the charge the gateway knows as `gateway_reference`.

        Several partial refunds of one charge are allowed, never more than was captured in total.
        Idempotent by `idempotency_key`: the same key gives the same result and never a second refund.
        A permanent refusal (charge unknown or not captured, other currency, more than is left) is a
        result with `approved=False` and a `reason_code`; GatewayError means there was no answer.
        """
        ...
