"""EmailSender over SMTP with aiosmtplib: one connection per message, STARTTLS and AUTH when configured."""

import re
from dataclasses import dataclass
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from notification_service.adapters.email_sender import (
    EmailRejectedError,
    EmailSendError,
    OutgoingEmail,
    SendReceipt,
)
from oms_runtime.logging import mask_text

_QUEUED_AS = re.compile(r"queued as\s+<?([^\s>]+)>?", re.IGNORECASE)


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


def build_message(email: OutgoingEmail, from_address: str, from_name: str = "") -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML second (clients show the last they can)."""
    message = EmailMessage()
    message["From"] = Address(display_name=from_name, addr_spec=from_address)
    message["To"] = Address(display_name=email.recipient_name, addr_spec=email.recipient)
    message["Subject"] = email.subject
    message["Message-ID"] = email.message_id
    message["Date"] = formatdate(usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def provider_message_id(response: str, fallback: str) -> str:
    """The server's queue id from a reply like `2.0.0 Ok: queued as 4Xyz`, else the reply, else the fallback."""
    match = _QUEUED_AS.search(response)
    if match:
        return match.group(1)
    return response.strip()[:300] or fallback


class SmtpEmailSender:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, email: OutgoingEmail) -> SendReceipt:
        try:
            message = build_message(email, self._config.from_address, self._config.from_name)
        except (ValueError, IndexError, MessageError) as exc:  # the header parser's ways to refuse an address
            raise EmailRejectedError(
                f"the recipient address cannot be used in a message: {type(exc).__name__}", "bad_address"
            ) from None
        try:
            _, response = await aiosmtplib.send(
                message,
                sender=self._config.from_address,
                recipients=[email.recipient],
                hostname=self._config.host,
                port=self._config.port,
                username=self._config.username,
                password=self._config.password,
                start_tls=self._config.start_tls,
                timeout=self._config.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # Its text names the recipient: keep it out of errors, logs and dead letters.
            codes = sorted({r.code for r in exc.recipients})
            if codes and all(500 <= code < 600 for code in codes):
                raise EmailRejectedError(f"recipient refused by the mail server ({codes})", "bad_address") from None
            raise EmailSendError(f"recipient temporarily refused by the mail server ({codes})") from None
        except aiosmtplib.SMTPDataError as exc:
            if 500 <= exc.code < 600:
                raise EmailRejectedError(
                    f"message refused by the mail server: {exc.code} {mask_text(exc.message)}"
                ) from None
            raise EmailSendError(f"message deferred by the mail server: {exc.code} {mask_text(exc.message)}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise EmailSendError(f"{type(exc).__name__}: {exc.code} {mask_text(exc.message)}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise EmailSendError(f"{type(exc).__name__}: {mask_text(str(exc))}") from exc
        return SendReceipt(provider_message_id(response, fallback=email.message_id))
