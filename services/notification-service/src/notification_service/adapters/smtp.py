"""EmailSender over SMTP with aiosmtplib, on a small pool of open connections.

A new connection per email cost a TCP connect, the greeting, EHLO (and STARTTLS and AUTH when
configured), and QUIT around the one transaction that matters: MAIL, RCPT, DATA. The pool keeps up to
`pool_size` connections open (the dispatcher's concurrency: one per message in flight) and sends each
email as one transaction on one of them. aiosmtplib has no pool of its own; this one is small:

- a connection is opened on demand, as before (STARTTLS when offered or required, AUTH when a user is
  set), and put back after a transaction that ended cleanly (the server resets its state after the
  DATA reply; after a refused command the client sends RSET before the connection is used again);
- a connection the server closed is noticed before use (aiosmtplib sees the close) and replaced; one
  idle for longer than `check_after_s` is asked NOOP first; and if it still fails at MAIL or RCPT with a
  dropped connection or a `421` (the server is closing it), nothing was handed over yet, so the email
  goes once more on a fresh connection. A failure from DATA on is never retried here (the email may
  have been taken): the dispatcher decides, as it always did;
- a timeout, a dropped connection or a 421 retires the connection; `close()` ends every connection
  with QUIT when the service stops.
"""

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib

from notification_service.adapters.email_sender import (
    EmailRejectedError,
    EmailSendError,
    OutgoingEmail,
    SendReceipt,
)
from notification_service.adapters.mime import EncodedMessage, MessageWriter, UnwritableMessageError
from oms_runtime.logging import get_logger, mask_text

log = get_logger(__name__)

_QUEUED_AS = re.compile(r"queued as\s+<?([^\s>]+)>?", re.IGNORECASE)
_CLOSING = 421
"""The server's way to say it is closing the connection (RFC 5321 3.8)."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 1025
    from_address: str = "orders@oms.example"
    from_name: str = ""
    username: str | None = None
    password: str | None = None
    start_tls: bool | None = None
    """None: use STARTTLS when the server offers it; True: require it; False: never."""
    timeout_s: float = 10.0
    pool_size: int = 8
    """Connections kept open at most (one per email in flight)."""
    check_after_s: float = 30.0
    """A connection idle for longer is checked with NOOP before its next email."""


def provider_message_id(response: str, fallback: str) -> str:
    """The server's queue id from a reply like `2.0.0 Ok: queued as 4Xyz`, else the reply, else the fallback."""
    match = _QUEUED_AS.search(response)
    if match:
        return match.group(1)
    return response.strip()[:300] or fallback


class _StaleConnectionError(Exception):
    """The connection was found dead before the email was handed over (at MAIL or RCPT)."""


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    idle_since: float
    reused: bool = False


class SmtpEmailSender:
    def __init__(self, config: SmtpConfig, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._writer = MessageWriter(config.from_address, config.from_name)
        self._monotonic = monotonic
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(config.pool_size)
        self._local_hostname: str | None = None
        self._closed = False

    async def send(self, email: OutgoingEmail) -> SendReceipt:
        try:
            encoded = self._writer.write(email)
        except UnwritableMessageError as exc:
            raise EmailRejectedError(
                f"the recipient address cannot be used in a message: {exc}", "bad_address"
            ) from None
        async with self._slots:
            connection = await self._checkout()
            try:
                try:
                    response = await self._transaction(connection, email.recipient, encoded)
                except _StaleConnectionError:
                    _discard(connection)
                    log.info("SMTP connection found closed before sending; sending on a new one")
                    connection = await self._open()
                    response = await self._transaction(connection, email.recipient, encoded)
            except (EmailRejectedError, EmailSendError):
                self._checkin(connection)  # closed where its state is unknown; else reset and reusable
                raise
            except BaseException:
                # Cancelled or crashed mid-command: a reply may still be on its way, never reuse it.
                _discard(connection)
                raise
            self._checkin(connection)
        return SendReceipt(provider_message_id(response, fallback=email.message_id))

    async def close(self) -> None:
        """Ends every idle connection (QUIT); connections in use are closed when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await asyncio.wait_for(connection.client.quit(), self._config.timeout_s)
            _discard(connection)

    # ------------------------------------------------------------ the pool

    async def _checkout(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the others may age out
            if not connection.client.is_connected:
                _discard(connection)
                continue
            if self._monotonic() - connection.idle_since > self._config.check_after_s:
                try:
                    await connection.client.noop()
                except (aiosmtplib.SMTPException, OSError):
                    _discard(connection)
                    continue
            connection.reused = True
            return connection
        return await self._open()

    def _checkin(self, connection: _Connection) -> None:
        if self._closed or not connection.client.is_connected:
            _discard(connection)
            return
        connection.idle_since = self._monotonic()
        self._idle.append(connection)

    async def _open(self) -> _Connection:
        client = aiosmtplib.SMTP(
            hostname=self._config.host,
            port=self._config.port,
            username=self._config.username,
            password=self._config.password,
            start_tls=self._config.start_tls,
            timeout=self._config.timeout_s,
            # Found once (aiosmtplib asks the resolver in a thread on every connect otherwise).
            local_hostname=self._local_hostname,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise EmailSendError(f"{type(exc).__name__}: {exc.code} {mask_text(exc.message)}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise EmailSendError(f"{type(exc).__name__}: {mask_text(str(exc))}") from exc
        self._local_hostname = client.local_hostname
        return _Connection(client, self._monotonic())

    # ------------------------------------------------------------ one email

    async def _transaction(self, connection: _Connection, recipient: str, encoded: EncodedMessage) -> str:
        """MAIL, RCPT, DATA on an open connection; returns the server's reply to the data."""
        client = connection.client
        options: list[str] = []
        encoding = "ascii"
        if encoded.smtputf8:
            if not client.supports_extension("smtputf8"):
                raise EmailSendError("the mail server takes no SMTPUTF8 (the address has non-ASCII characters)")
            options, encoding = ["SMTPUTF8", "BODY=8BITMIME"], "utf-8"
        if client.supports_extension("size"):
            options.append(f"SIZE={len(encoded.data)}")
        try:
            await client.mail(self._config.from_address, options=options, encoding=encoding)
            await client.rcpt(recipient, encoding=encoding)
        except aiosmtplib.SMTPRecipientRefused as exc:
            # Its text names the recipient: keep it out of errors, logs and dead letters.
            if exc.code == _CLOSING:
                client.close()
                if connection.reused:
                    raise _StaleConnectionError from None
            else:
                await _reset(connection)
            if 500 <= exc.code < 600:
                raise EmailRejectedError(
                    f"recipient refused by the mail server ([{exc.code}])", "bad_address"
                ) from None
            raise EmailSendError(f"recipient temporarily refused by the mail server ([{exc.code}])") from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == _CLOSING:
                client.close()
                if connection.reused:
                    raise _StaleConnectionError from None
            else:
                await _reset(connection)
            raise EmailSendError(f"{type(exc).__name__}: {exc.code} {mask_text(exc.message)}") from None
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            client.close()
            if connection.reused:
                raise _StaleConnectionError from None
            raise EmailSendError(f"{type(exc).__name__}: {mask_text(str(exc))}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise EmailSendError(f"{type(exc).__name__}: {mask_text(str(exc))}") from exc
        try:
            response = await client.data(encoded.data)
        except aiosmtplib.SMTPDataError as exc:
            await _reset(connection)
            if 500 <= exc.code < 600:
                raise EmailRejectedError(
                    f"message refused by the mail server: {exc.code} {mask_text(exc.message)}"
                ) from None
            raise EmailSendError(f"message deferred by the mail server: {exc.code} {mask_text(exc.message)}") from None
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise EmailSendError(f"{type(exc).__name__}: {exc.code} {mask_text(exc.message)}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise EmailSendError(f"{type(exc).__name__}: {mask_text(str(exc))}") from exc
        return response.message


async def _reset(connection: _Connection) -> None:
    """RSET after a refused command, so the next email starts a clean transaction; a connection that
    does not take it is closed."""
    client = connection.client
    if not client.is_connected:
        return
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


def _discard(connection: _Connection) -> None:
    connection.client.close()
