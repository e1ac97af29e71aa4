"""The port to a payment gateway (card acquirer / PSP). Pure: the contract only, no I/O."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GatewayResult:
    """The gateway's answer to one capture.

    `reference` is the gateway's id of the attempt (declines have one too). On a decline,
    `reason_code` is machine-readable (`insufficient_funds`, `suspected_fraud`, `invalid_token`, ...)
    and `reason` is in plain words.
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

    Nothing is known about the charge: the capture must be retried with the same idempotency key.
    """


class PaymentGateway(Protocol):
    async def capture(self, idempotency_key: str, amount_minor: int, currency: str, token: str) -> GatewayResult:
        """Authorises and captures `amount_minor` of `currency` on the tokenised card.

        Idempotent by `idempotency_key`: the same key gives the same result and never a second charge.
        Raises GatewayError when there is no answer.
        """
        ...
