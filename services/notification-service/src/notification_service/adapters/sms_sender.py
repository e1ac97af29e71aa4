"""The port through which notifications leave the service as SMS."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutgoingSms:
    to: str
    """E.164, e.g. `+49301234567`."""
    body: str
    idempotency_key: str
    """The notification id: the same on every attempt, so the provider sends one message whatever we retry."""
    reference: str = ""


@dataclass(frozen=True)
class SmsReceipt:
    provider_message_id: str
    replayed: bool = False
    """The provider had this idempotency key already and answered with the first message."""


class SmsSendError(Exception):
    """Sending failed in a way that may pass (provider down, timeout, 5xx, rate limit): try again later.
    Its text never contains the phone number."""


class SmsRejectedError(Exception):
    """The provider refused this message for good. `reason_code`: `bad_address` (not a number it can
    reach), `unsubscribed` (the recipient told it to stop) or `rejected`. No phone number in the text."""

    def __init__(self, message: str, reason_code: str = "rejected") -> None:
        super().__init__(message)
        self.reason_code = reason_code


class SmsSender(Protocol):
    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        """Hands the message to the provider; raises SmsSendError or SmsRejectedError."""
        ...
