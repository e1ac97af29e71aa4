"""A real SMTP server for notification-service's tests: aiosmtpd on a free local port, collecting what
it is sent (the `smtp` fixture in conftest.py starts one per test)."""

import email
import email.policy
import itertools
import socket
from email.message import EmailMessage
from typing import Any

from notification_service.adapters.smtp import SmtpConfig, SmtpEmailSender


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CollectingSmtp:
    """aiosmtpd handler: keeps every message; refuses recipients when told to."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.refuse: dict[str, str] = {}
        """recipient -> the reply to its RCPT TO, e.g. `550 5.1.1 no such user`."""
        self.refuse_once: dict[str, str] = {}
        self._queue_ids = itertools.count(1)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse_once:
            return self.refuse_once.pop(address)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        return f"250 2.0.0 Ok: queued as Q{next(self._queue_ids)}"


class Smtp:
    """A running server: what it received, and a sender that talks to it."""

    def __init__(self, handler: CollectingSmtp, port: int) -> None:
        self.handler = handler
        self.port = port

    @property
    def received(self) -> list[tuple[list[str], EmailMessage]]:
        return self.handler.received

    def sender(self, **overrides: Any) -> SmtpEmailSender:
        config = {"port": self.port, "from_name": "OMS Orders", "timeout_s": 5.0, **overrides}
        return SmtpEmailSender(SmtpConfig(**config))


def parts(message: EmailMessage) -> dict[str, str]:
    """content type -> text, of every text part of a received message."""
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = str(part.get_content())
    return found
