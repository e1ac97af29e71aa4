"""A real SMTP server for notification-service's tests: aiosmtpd on a free local port, collecting what
it is sent (the `smtp` fixture in conftest.py starts one per test)."""

import asyncio
import email
import email.policy
import itertools
import socket
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from notification_service.adapters.smtp import SmtpConfig, SmtpEmailSender


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CollectingSmtp:
    """aiosmtpd handler: keeps every message and the commands that came with it (by client port, so
    per connection); refuses recipients, or answers MAIL with 421 (closing), when told to."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.refuse: dict[str, str] = {}
        """recipient -> the reply to its RCPT TO, e.g. `550 5.1.1 no such user`."""
        self.refuse_once: dict[str, str] = {}
        self.closing_on_mail = 0
        """How many MAIL commands to come are answered `421` (the server closing the connection)."""
        self.slow_mail_s = 0.0
        """The next MAIL is answered after this long."""
        self.commands: list[tuple[str, int]] = []
        """(command, client port) in the order they arrived: EHLO, MAIL, RSET, NOOP, QUIT, DATA."""
        self._queue_ids = itertools.count(1)
        self._arrived = threading.Condition()

    def _saw(self, command: str, session: Any) -> None:
        self.commands.append((command, session.peer[1]))

    def wait_for_messages(self, count: int, timeout_s: float) -> bool:
        """Blocks (call it in a thread) until `count` messages arrived; False after the timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.received) >= count, timeout_s)

    def connections(self, command: str = "EHLO") -> list[int]:
        """The client ports that sent `command`, each once, in order: one per connection."""
        return list(dict.fromkeys(port for name, port in self.commands if name == command))

    async def handle_EHLO(  # noqa: N802 (aiosmtpd's name)
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self._saw("EHLO", session)
        session.host_name = hostname
        return responses

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        self._saw("MAIL", session)
        if self.slow_mail_s:
            delay, self.slow_mail_s = self.slow_mail_s, 0.0
            await asyncio.sleep(delay)
        if self.closing_on_mail:
            self.closing_on_mail -= 1
            return "421 4.3.2 Service shutting down, closing transmission channel"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self._saw("RSET", session)
        return "250 OK"

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:  # noqa: N802
        self._saw("NOOP", session)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self._saw("QUIT", session)
        return "221 Bye"

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
        self._saw("DATA", session)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.received.append((list(envelope.rcpt_tos), message))
            self._arrived.notify_all()
        return f"250 2.0.0 Ok: queued as Q{next(self._queue_ids)}"


class Smtp:
    """A running server: what it received, and a sender that talks to it."""

    def __init__(self, handler: CollectingSmtp, port: int) -> None:
        self.handler = handler
        self.port = port
        self._controller = Controller(handler, hostname="127.0.0.1", port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def restart(self) -> None:
        """Stops the server (closing every connection) and starts it again on the same port."""
        self.stop()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.start()

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
