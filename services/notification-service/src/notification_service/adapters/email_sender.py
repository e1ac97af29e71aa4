"""The port through which notifications leave the service as email."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingEmail:
    recipient: str
    recipient_name: str
    subject: str
    text: str
    html: str
    message_id: str
    """`<id@domain>`, derived from the causing event: the same on every attempt."""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendReceipt:
    provider_message_id: str
    """What the mail server calls the message (its queue id), else its reply."""


class EmailSendError(Exception):
    """Sending failed in a way that may pass (server down, timeout, 4xx): try again later.

    Its text never contains the recipient's address.
    """


class EmailRejectedError(Exception):
    """The mail server refused this message for good (5xx for the recipient or the content):
    sending it again would fail again. Its text never contains the recipient's address.

    `reason_code`: `bad_address` (the recipient) or `rejected` (the message)."""

    def __init__(self, message: str, reason_code: str = "rejected") -> None:
        super().__init__(message)
        self.reason_code = reason_code


class EmailSender(Protocol):
    async def send(self, email: OutgoingEmail) -> SendReceipt:
        """Hands the message to the mail system; raises EmailSendError or EmailRejectedError."""
        ...
