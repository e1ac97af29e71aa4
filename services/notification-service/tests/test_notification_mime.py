"""The email writer (adapters/mime.py): what a receiving side reads from its bytes is what the parser-checked
`EmailMessage` of the default policy said, for every template in every locale and for awkward names and
subjects; its bytes are the ones the stdlib's generator writes for the same `email.mime` message; and
nothing in a name or subject can add a header."""

import email
import email.generator
import email.policy
import io
import json
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart

import pytest
from notification_smtp import parts as message_parts

from notification_service.adapters.email_sender import OutgoingEmail
from notification_service.adapters.mime import (
    _UTF8_QP,
    _WIRE,
    MessageWriter,
    UnwritableMessageError,
    _header_text,
    _mailbox,
    build_email_message,
    check_address,
)
from notification_service.adapters.templates import TemplateRenderer
from notification_service.domain.notifications import (
    NotifyingEvent,
    contact_from_order_placed,
    event_context,
    kind_for,
)
from notification_service.domain.notifications import template_context as context_for
from oms_events.messages import OrderPlaced

NOW = datetime(2025, 3, 12, 10, 0, tzinfo=UTC)
WRITER = MessageWriter("orders@oms.example", "OMS Orders")
HEADERS = ("From", "To", "Subject", "Message-ID", "Date", "Auto-Submitted", "X-OMS-Order-Id")


def outgoing(**overrides: str) -> OutgoingEmail:
    values = {
        "recipient": "jane.doe@example.com",
        "recipient_name": "Jane Doe",
        "subject": "Your order 3F2A9C1E is confirmed",
        "text": "Hello Jane Doe,\n\nthank you.\n",
        "html": "<!DOCTYPE html><html><body><p>Hello Jane Doe,</p></body></html>",
        "message_id": "<4f1c@oms.example>",
        **overrides,
    }
    return OutgoingEmail(**values, headers={"X-OMS-Order-Id": "3f2a9c1e-0000-4000-8000-000000000000"})


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def reference(message: OutgoingEmail) -> EmailMessage:
    """What the old builder made (EmailMessage, default policy, flattened for SMTP), read back."""
    built = build_email_message(message, "orders@oms.example", "OMS Orders", email.utils.format_datetime(NOW))
    return parsed(built.as_bytes(policy=email.policy.SMTP))


def assert_reads_the_same(message: OutgoingEmail) -> None:
    written = parsed(WRITER.write(message, NOW).data)
    expected = reference(message)
    for name in HEADERS:
        assert str(written[name]) == str(expected[name]), name
    assert written.get_content_type() == expected.get_content_type() == "multipart/alternative"
    assert message_parts(written) == message_parts(expected)


def generated(message: OutgoingEmail, seed: int) -> bytes:
    """The message as `email.mime` objects flattened by the stdlib's generator (the writer's first version,
    which cost six times its CPU), its boundary drawn from the same random numbers."""
    mime = MIMEMultipart("alternative")
    headers = [
        ("From", _mailbox("OMS Orders", "orders@oms.example")),
        ("To", _mailbox(message.recipient_name, message.recipient)),
        ("Subject", _header_text("Subject", message.subject)),
        ("Message-ID", _header_text("Message-ID", message.message_id)),
        ("Date", email.utils.format_datetime(NOW)),
        ("Auto-Submitted", "auto-generated"),
        *((name, _header_text(name, value)) for name, value in message.headers.items()),
    ]
    for name, value in headers:
        mime[name] = value  # type: ignore[assignment]  # compat32 stores a Header as given
    for subtype, text in (("plain", message.text), ("html", message.html)):
        part = MIMENonMultipart("text", subtype, charset="utf-8")
        part.set_payload(text if text.endswith("\n") else text + "\n", _UTF8_QP)
        mime.attach(part)
    out = io.BytesIO()
    random.seed(seed)
    email.generator.BytesGenerator(out, policy=_WIRE).flatten(mime)
    return out.getvalue()


def test_the_bytes_are_the_stdlib_generators(every_event: list[NotifyingEvent], placed: OrderPlaced) -> None:
    renderer = TemplateRenderer()
    contact = contact_from_order_placed(placed)
    messages = [
        outgoing(recipient_name=name, subject=subject, text=text, html=f"<p>{text}</p>")
        for name in ("Jane Doe", "Jäne Dœ", "Doe, Jane", " ".join(["Ünïcödé"] * 12), "")
        for subject in ("Your order", "Ihre Bestellung ist bestätigt", "Your order " + "very " * 30)
        for text in ("Hello\n", "From here on\nFrom me\n" + "ü" * 100 + "\r\nx\ry", "Å" * 50 + "\x85 NEL", "no newline")
    ]
    for event in every_event:
        context = context_for(contact, json.loads(json.dumps(event_context(event))))
        for locale in ("en", "de"):
            rendered = renderer.render(kind_for(event), locale, context)
            messages.append(outgoing(subject=rendered.subject, text=rendered.text, html=rendered.html))
    for seed, message in enumerate(messages):
        random.seed(seed)
        assert WRITER.write(message, NOW).data == generated(message, seed)


def test_every_template_in_every_locale_reads_as_the_parser_checked_message(
    every_event: list[NotifyingEvent], placed: OrderPlaced
) -> None:
    renderer = TemplateRenderer()
    contact = contact_from_order_placed(placed)
    for event in every_event:
        context = context_for(contact, json.loads(json.dumps(event_context(event))))
        for locale in ("en", "de"):
            rendered = renderer.render(kind_for(event), locale, context)
            assert_reads_the_same(outgoing(subject=rendered.subject, text=rendered.text, html=rendered.html))


@pytest.mark.parametrize(
    "name",
    [
        "Jane Doe",
        "Jäne Dœ",
        "Doe, Jane",
        'Jane "JD" Doe',
        "O'Brien-Smith Jr.",
        " ".join(["Ünïcödé"] * 12),
        "",
        "a" * 120,
    ],
)
def test_names_read_the_same(name: str) -> None:
    assert_reads_the_same(outgoing(recipient_name=name))


@pytest.mark.parametrize(
    "subject",
    ["Ihre Bestellung 3F2A9C1E ist bestätigt", "Your order " + "very " * 30 + "long", "¡Olé! — 100 % “quoted”"],
)
def test_subjects_read_the_same(subject: str) -> None:
    assert_reads_the_same(outgoing(subject=subject))


def test_the_bytes_are_7bit_with_quoted_printable_parts() -> None:
    data = WRITER.write(outgoing(text="Grüße,\n" + "x" * 200 + "\n"), NOW).data
    assert data.isascii()
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    message = parsed(data)
    assert [p["Content-Transfer-Encoding"] for p in message.iter_parts()] == ["quoted-printable"] * 2
    assert message_parts(message)["text/plain"] == "Grüße,\r\n" + "x" * 200 + "\r\n"


@pytest.mark.parametrize(
    "field",
    [
        {"recipient_name": "Jane\r\nBcc: someone@evil.example"},
        {"recipient_name": "Jane\nBcc: someone@evil.example"},
        {"subject": "Your order\r\nBcc: someone@evil.example"},
        {"subject": "Your order\rBcc: someone@evil.example"},
        {"message_id": "<x@oms.example>\nBcc: someone@evil.example"},
    ],
)
def test_a_line_break_in_a_header_value_is_refused_not_written(field: dict[str, str]) -> None:
    with pytest.raises(UnwritableMessageError):
        WRITER.write(outgoing(**field), NOW)


@pytest.mark.parametrize(
    "address",
    [
        "jürgen@example.com",
        "jane@doe@example.com",
        "jane doe@example.com",
        "<jane@example.com>",
        "jane@",
        "@example.com",
        "",
    ],
)
def test_an_address_the_parser_refuses_is_refused(address: str) -> None:
    with pytest.raises(UnwritableMessageError):
        check_address(address)


@pytest.mark.parametrize("address", ["jane.doe+orders@example.com", '"jane doe"@example.com', "j@[127.0.0.1]"])
def test_unusual_addresses_the_parser_takes_are_written(address: str) -> None:
    check_address(address)
    assert parsed(WRITER.write(outgoing(recipient=address), NOW).data)["To"].addresses[0].addr_spec == address


def test_a_non_ascii_address_needs_smtputf8() -> None:
    written = WRITER.write(outgoing(recipient="jane@bücher.example", recipient_name="Jürgen"), NOW)
    assert written.smtputf8
    message = email.message_from_string(written.data.decode("utf-8"), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"].addresses[0].addr_spec == "jane@bücher.example"
    assert message_parts(message)["text/plain"].startswith("Hello Jane Doe,")
    assert not WRITER.write(outgoing(), NOW).smtputf8
