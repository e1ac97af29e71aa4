"""The bytes of an outgoing email: multipart/alternative (plain text, then HTML), ready for SMTP DATA.

Why not `email.message.EmailMessage` with the default policy, as before: it parses every header it is
given back into objects (HeaderRegistry builds a class per header, the address parser walks every
address), which cost about 6 ms of CPU per email, most of the service's message cost. The stdlib's
`email.mime` classes with the compat32 policy store strings as given; with quoted-printable bodies
(7-bit clean, so no 8BITMIME needed) and short ASCII header lines written as they are, a message costs
a fifth of that. A receiving side decodes the same headers and the same text (the tests compare both
builders' messages, parsed, for every template).

Nor the stdlib's generator walking an `email.mime` tree: that was still about 350 us per email (a
regular expression compiled per message for its boundary check, the parameters of every Content-Type
parsed back). The message has one fixed shape, so it is written here directly, with the same pieces the
generator used (compat32 folding of every header, the `utf-8` charset's quoted-printable encoder, CRLF
line ends, its kind of boundary): the same bytes (a test compares them with the generator's for every
template), at a sixth of the cost.

What the parser used to refuse is still refused, before anything is written: a header value with a
line break (a name or subject must never add a header), and an address the parser cannot read. The
parser still decides any address that is not a plain `local@domain` of ASCII characters, and an
address with non-ASCII characters (SMTPUTF8) still goes through `EmailMessage`, the only way to write
one: rare, and its cost then does not matter.
"""

import email.charset
import email.generator
import email.policy
import io
import random
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email._policybase import Compat32
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Final

from notification_service.adapters.email_sender import OutgoingEmail

# local@domain of dot-atoms (RFC 5322 3.2.3): always an address the header parser accepts as it is.
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS: Final = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_LINE_BREAK: Final = re.compile(r"[\r\n]")
_LINE_ENDS: Final = re.compile(r"\r\n|\r|\n")
_FROM_LINE: Final = re.compile(r"^From ", re.MULTILINE)
_MAX_LINE: Final = 78

# utf-8 bodies as quoted-printable (the stdlib's utf-8 default is base64): readable in the raw message,
# 7-bit clean, and what the old builder chose for the templates' long lines.
_UTF8_QP: Final = email.charset.Charset("utf-8")
_UTF8_QP.body_encoding = email.charset.QP


class _ShortAsciiHeaders(Compat32):
    """compat32, except that a header line that needs no folding or encoding is written as it is
    (compat32 runs every value through `email.header.Header`, a third of what a message cost)."""

    def fold_binary(self, name: str, value: object) -> bytes:
        if isinstance(value, str) and value.isascii() and len(name) + 2 + len(value) <= _MAX_LINE:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)  # type: ignore[arg-type]


_WIRE: Final = _ShortAsciiHeaders(linesep="\r\n")


class UnwritableMessageError(ValueError):
    """The message cannot be written: an address the parser refuses, or a header value with a line break."""


@dataclass(frozen=True)
class EncodedMessage:
    data: bytes
    smtputf8: bool = False
    """The recipient's address has non-ASCII characters: MAIL needs SMTPUTF8 (and the server must offer it)."""


def check_address(address: str) -> None:
    """Raises UnwritableMessageError for an address the email header parser would refuse."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return
    try:
        Address(addr_spec=address)
    except Exception as exc:  # the parser's ways to refuse (ValueError, IndexError, HeaderParseError)
        raise UnwritableMessageError(f"address refused by the parser: {type(exc).__name__}") from None


def _header_text(name: str, value: str) -> str | Header:
    if _LINE_BREAK.search(value):
        raise UnwritableMessageError(f"a line break in the {name} header")
    return value if value.isascii() else Header(value, "utf-8", header_name=name)


def _text_part(subtype: str, text: str) -> bytes:
    """`MIMEText(text, subtype, "utf-8")` as the stdlib's generator writes it (compat32, CRLF), quoted-printable,
    ending in a newline as `set_content` ends it: the same encoder, the same ">From " quoting of a line that
    starts with "From " (compat32's mangle_from_), without the generator's walk of a message tree."""
    body = _UTF8_QP.body_encode((text if text.endswith("\n") else text + "\n").encode("utf-8"))
    body = _FROM_LINE.sub(">From ", body)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "MIME-Version: 1.0\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n" + "\r\n".join(_LINE_ENDS.split(body))
    ).encode("ascii")


def _boundary(parts: list[bytes]) -> str:
    """A boundary as the stdlib's generator makes one (`===...==` around a random number), that no part holds
    (quoted-printable text cannot: it writes "=" as "=3D")."""
    while True:
        boundary = f"{'=' * 15}{random.randrange(sys.maxsize):019d}=="
        marker = b"--" + boundary.encode("ascii")
        if not any(marker in part for part in parts):
            return boundary


def _mailbox(name: str, address: str) -> str | Header:
    if _LINE_BREAK.search(name):
        raise UnwritableMessageError("a line break in a display name")
    if name.isascii():
        return formataddr((name, address))  # quoted where the name needs it
    # Encoded words, split where a line must fold (formataddr would write one, however long).
    mailbox = Header(name, "utf-8", header_name="To")
    mailbox.append(f" <{address}>", "us-ascii")
    return mailbox


class MessageWriter:
    """Writes messages from one sender (its From header is made once)."""

    def __init__(self, from_address: str, from_name: str = "") -> None:
        check_address(from_address)
        self._from_address = from_address
        self._from_name = from_name
        self._from = _mailbox(from_name, from_address) if from_address.isascii() else ""

    def write(self, message: OutgoingEmail, now: datetime | None = None) -> EncodedMessage:
        check_address(message.recipient)
        date = format_datetime(now or datetime.now(UTC))
        if not (message.recipient.isascii() and self._from):
            return EncodedMessage(_write_smtputf8(message, self._from_address, self._from_name, date), smtputf8=True)
        headers: list[tuple[str, str | Header]] = [
            ("From", self._from),
            ("To", _mailbox(message.recipient_name, message.recipient)),
            ("Subject", _header_text("Subject", message.subject)),
            ("Message-ID", _header_text("Message-ID", message.message_id)),
            ("Date", date),
            ("Auto-Submitted", "auto-generated"),
            *((name, _header_text(name, value)) for name, value in message.headers.items()),
        ]
        parts = [_text_part("plain", message.text), _text_part("html", message.html)]
        boundary = _boundary(parts)
        out = [
            _WIRE.fold_binary("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
            b"MIME-Version: 1.0\r\n",
            *(_WIRE.fold_binary(name, value) for name, value in headers),
            b"\r\n--",
            boundary.encode("ascii"),
            b"\r\n",
            parts[0],
            b"\r\n--",
            boundary.encode("ascii"),
            b"\r\n",
            parts[1],
            b"\r\n--",
            boundary.encode("ascii"),
            b"--\r\n",
        ]
        return EncodedMessage(b"".join(out))


def build_email_message(message: OutgoingEmail, from_address: str, from_name: str, date: str) -> EmailMessage:
    """The same message as an `EmailMessage` (default policy): the parser checks every header."""
    built = EmailMessage()
    built["From"] = Address(display_name=from_name, addr_spec=from_address)
    built["To"] = Address(display_name=message.recipient_name, addr_spec=message.recipient)
    built["Subject"] = message.subject
    built["Message-ID"] = message.message_id
    built["Date"] = date
    built["Auto-Submitted"] = "auto-generated"
    for name, value in message.headers.items():
        built[name] = value
    built.set_content(message.text)
    built.add_alternative(message.html, subtype="html")
    return built


def _write_smtputf8(message: OutgoingEmail, from_address: str, from_name: str, date: str) -> bytes:
    try:
        built = build_email_message(message, from_address, from_name, date)
    except Exception as exc:
        raise UnwritableMessageError(f"header refused by the parser: {type(exc).__name__}") from None
    out = io.BytesIO()
    email.generator.BytesGenerator(out, policy=email.policy.SMTPUTF8).flatten(built)
    return out.getvalue()
