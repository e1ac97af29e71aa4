"""The local SMTP sink (deploy/local/mailsink.py): it keeps every message byte for byte and prints its
masked recipient and its Subject, decoded as a mail reader would, without parsing the rest."""

import email
import email.policy
import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from mailsink import MaildirSink, subject_of

from notification_service.adapters.email_sender import OutgoingEmail
from notification_service.adapters.mime import MessageWriter

SUBJECTS = [
    "Your order 3F2A9C1E is confirmed",
    "Ihre Bestellung 3F2A9C1E ist unterwegs \u2013 Größe M, Farbe Grün",
    "A subject long enough to be folded by any writer that keeps its lines under seventy-eight characters, twice over",
    "Ein Betreff, lang genug, um gefaltet zu werden: Bestätigung Ihrer Rücksendung über zwei Artikel (T-Shirt, Tasse) \u2013 danke",
    "=?not an encoded word",
    "",
]


def written_by_the_service(subject: str) -> bytes:
    message = OutgoingEmail(
        recipient="jane.doe@example.com",
        recipient_name="Jane Doe",
        subject=subject,
        text="Hello",
        html="<p>Hello</p>",
        message_id="<n@oms.example>",
        headers={"X-OMS-Notification-Kind": "order_shipped"},
    )
    return MessageWriter("orders@oms.example", "OMS Orders").write(message).data


def written_by_the_stdlib(subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "orders@oms.example"
    message["Subject"] = subject
    message.set_content("Hello")
    return message.as_bytes(policy=email.policy.SMTP)


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("write", [written_by_the_service, written_by_the_stdlib])
def test_the_subject_reads_as_the_full_parser_reads_it(subject: str, write: object) -> None:
    assert callable(write)
    content = write(subject)
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert subject_of(content) == str(parsed["Subject"])


def test_a_message_without_a_subject_and_a_subject_line_in_the_body() -> None:
    assert subject_of(b"From: a@example.com\r\n\r\nSubject: not a header\r\n") == "(no subject)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_message_is_kept_byte_for_byte_and_printed_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    controller = Controller(MaildirSink(tmp_path), hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    content = written_by_the_service(SUBJECTS[1])
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("orders@oms.example", ["jane.doe@example.com"], content)
    finally:
        controller.stop()
    [kept] = tmp_path.glob("*.eml")
    assert kept.read_bytes() == content
    printed = capsys.readouterr().out
    assert "mail to j***@example.com" in printed
    assert repr(SUBJECTS[1]) in printed
    assert "jane.doe" not in printed
