"""The channel adapters against real local servers: SMTP (aiosmtpd on a free port) and the SMS
provider's HTTP API (the local provider of notification_service.testing on a free port)."""

import asyncio
import dataclasses
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from notification_smtp import Smtp, free_port, parts

from notification_service.adapters.email_sender import (
    EmailRejectedError,
    EmailSendError,
    OutgoingEmail,
)
from notification_service.adapters.http_sms import HttpSmsSender, SmsProviderConfig
from notification_service.adapters.mime import MessageWriter
from notification_service.adapters.sms_sender import OutgoingSms, SmsRejectedError, SmsSendError
from notification_service.adapters.smtp import SmtpConfig, SmtpEmailSender, provider_message_id
from notification_service.testing import LocalSmsProvider

CUSTOMER = "jane.doe@example.com"
PHONE = "+49301234567"

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------- the SMTP adapter


def outgoing(recipient: str = CUSTOMER) -> OutgoingEmail:
    return OutgoingEmail(
        recipient=recipient,
        recipient_name="Jane Doe",
        subject="Your order 3F2A9C1E is confirmed",
        text="Hello Jane Doe,\n\nthank you.\n",
        html="<!DOCTYPE html><html><body><p>Hello Jane Doe,</p></body></html>",
        message_id="<4f1c@oms.example>",
        headers={"X-OMS-Order-Id": "3f2a9c1e"},
    )


def test_build_message_is_multipart_alternative_text_then_html() -> None:
    message = email.message_from_bytes(
        MessageWriter("orders@oms.example", "OMS Orders").write(outgoing()).data, policy=email.policy.default
    )
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == "OMS Orders <orders@oms.example>"
    assert message["To"] == "Jane Doe <jane.doe@example.com>"
    assert message["Message-ID"] == "<4f1c@oms.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-OMS-Order-Id"] == "3f2a9c1e"
    assert message["Date"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("2.0.0 Ok: queued as 4XyZ1", "4XyZ1"),
        ("OK queued as <abc@mx>", "abc@mx"),
        ("Message accepted for delivery", "Message accepted for delivery"),
        ("", "<fallback@x>"),
    ],
)
def test_provider_message_id(reply: str, expected: str) -> None:
    assert provider_message_id(reply, fallback="<fallback@x>") == expected


async def test_smtp_sender_delivers_and_returns_the_queue_id(smtp: Smtp) -> None:
    receipt = await smtp.sender().send(outgoing())
    assert receipt.provider_message_id == "Q1"
    [(rcpt, message)] = smtp.received
    assert rcpt == [CUSTOMER]
    assert message["Subject"] == "Your order 3F2A9C1E is confirmed"
    assert set(parts(message)) == {"text/plain", "text/html"}


async def test_smtp_permanent_refusal_is_a_rejection_without_the_address(smtp: Smtp) -> None:
    smtp.handler.refuse[CUSTOMER] = "550 5.1.1 <jane.doe@example.com>: no such user"
    with pytest.raises(EmailRejectedError) as caught:
        await smtp.sender().send(outgoing())
    assert "550" in str(caught.value)
    assert "jane" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert smtp.received == []


async def test_smtp_temporary_refusal_is_retryable(smtp: Smtp) -> None:
    smtp.handler.refuse[CUSTOMER] = "451 4.7.1 <jane.doe@example.com>: greylisted, try again"
    with pytest.raises(EmailSendError) as caught:
        await smtp.sender().send(outgoing())
    assert "451" in str(caught.value)
    assert "jane" not in str(caught.value)


async def test_smtp_server_down_is_retryable() -> None:
    sender = SmtpEmailSender(SmtpConfig(port=free_port(), timeout_s=2.0))
    with pytest.raises(EmailSendError):
        await sender.send(outgoing())


async def test_an_address_that_cannot_be_written_is_a_rejection(smtp: Smtp) -> None:
    with pytest.raises(EmailRejectedError):
        await smtp.sender().send(outgoing(recipient="jane@doe@example.com"))


# ---------------------------------------------------------------- the SMTP connection pool


def numbered(i: int) -> OutgoingEmail:
    return dataclasses.replace(outgoing(), subject=f"message {i}", message_id=f"<{i}@oms.example>")


async def test_many_emails_share_one_connection(smtp: Smtp) -> None:
    sender = smtp.sender()
    receipts = [await sender.send(numbered(i)) for i in range(5)]
    assert [r.provider_message_id for r in receipts] == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    assert [m["Subject"] for _, m in smtp.received] == [f"message {i}" for i in range(5)]
    assert len(smtp.handler.connections("EHLO")) == 1, "one connect, one EHLO for all five"
    assert len(smtp.handler.connections("DATA")) == 1
    assert [c for c, _ in smtp.handler.commands if c != "EHLO"] == ["MAIL", "DATA"] * 5, "no RSET, no QUIT between"
    await sender.close()
    assert smtp.handler.commands[-1][0] == "QUIT"


async def test_emails_sent_at_once_use_at_most_pool_size_connections(smtp: Smtp) -> None:
    sender = smtp.sender(pool_size=3)
    await asyncio.gather(*(sender.send(numbered(i)) for i in range(12)))
    assert len(smtp.received) == 12
    assert len(smtp.handler.connections("EHLO")) == 3
    await asyncio.gather(*(sender.send(numbered(i)) for i in range(12, 18)))
    assert len(smtp.handler.connections("EHLO")) == 3, "the open ones are used again"
    await sender.close()


async def test_a_connection_the_server_dropped_is_replaced(smtp: Smtp) -> None:
    sender = smtp.sender()
    await sender.send(numbered(1))
    [first] = smtp.handler.connections()
    smtp.restart()  # the server goes away and comes back: every open connection is closed
    await asyncio.sleep(0.05)
    await sender.send(numbered(2))
    assert [m["Subject"] for _, m in smtp.received] == ["message 1", "message 2"]
    assert smtp.handler.connections() == [first, smtp.handler.connections()[1]]
    assert len(smtp.handler.connections()) == 2
    await sender.close()


async def test_a_closing_421_at_mail_on_a_reused_connection_sends_on_a_new_one(smtp: Smtp) -> None:
    sender = smtp.sender()
    await sender.send(numbered(1))
    smtp.handler.closing_on_mail = 1
    receipt = await sender.send(numbered(2))
    assert receipt.provider_message_id == "Q2"
    assert [m["Subject"] for _, m in smtp.received] == ["message 1", "message 2"]
    assert len(smtp.handler.connections()) == 2
    await sender.close()


async def test_a_closing_421_on_a_new_connection_is_a_transient_failure(smtp: Smtp) -> None:
    smtp.handler.closing_on_mail = 1
    sender = smtp.sender()
    with pytest.raises(EmailSendError, match="421"):
        await sender.send(numbered(1))
    assert smtp.received == []
    await sender.send(numbered(2))
    assert len(smtp.received) == 1
    await sender.close()


async def test_a_refused_recipient_resets_the_transaction_and_keeps_the_connection(smtp: Smtp) -> None:
    sender = smtp.sender()
    smtp.handler.refuse_once[CUSTOMER] = "550 5.1.1 <jane.doe@example.com>: no such user"
    with pytest.raises(EmailRejectedError):
        await sender.send(numbered(1))
    await sender.send(numbered(2))
    assert [c for c, _ in smtp.handler.commands if c != "EHLO"] == ["MAIL", "RSET", "MAIL", "DATA"]
    assert len(smtp.handler.connections()) == 1
    assert [m["Subject"] for _, m in smtp.received] == ["message 2"]
    await sender.close()


async def test_a_connection_idle_for_long_is_checked_with_noop(smtp: Smtp) -> None:
    now = [0.0]
    sender = SmtpEmailSender(SmtpConfig(port=smtp.port, timeout_s=5.0, check_after_s=30), monotonic=lambda: now[0])
    await sender.send(numbered(1))
    now[0] = 10.0
    await sender.send(numbered(2))
    now[0] = 100.0
    await sender.send(numbered(3))
    assert [c for c, _ in smtp.handler.commands if c != "EHLO"] == [
        "MAIL",
        "DATA",
        "MAIL",
        "DATA",
        "NOOP",
        "MAIL",
        "DATA",
    ]
    assert len(smtp.handler.connections()) == 1
    await sender.close()


async def test_a_send_cancelled_midway_never_leaves_its_connection_for_the_next(smtp: Smtp) -> None:
    sender = smtp.sender()
    await sender.send(numbered(1))
    smtp.handler.slow_mail_s = 1.0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sender.send(numbered(2)), 0.2)  # cancelled while waiting for the MAIL reply
    await sender.send(numbered(3))
    assert len(smtp.handler.connections()) == 2, "the reply to MAIL may still come on the first one"
    assert [m["Subject"] for _, m in smtp.received] == ["message 1", "message 3"]
    await sender.close()


# ---------------------------------------------------------------- the SMS adapter


@pytest.fixture
def provider() -> Iterator[LocalSmsProvider]:
    with LocalSmsProvider(api_key="provider-key-0123456789") as local:
        yield local


def sms_sender(provider: LocalSmsProvider, **overrides: Any) -> HttpSmsSender:
    config = {"base_url": provider.url, "api_key": "provider-key-0123456789", "timeout_s": 5.0, **overrides}
    return HttpSmsSender(SmsProviderConfig(**config))


def text_message(key: str = "3c9e2a7c-notification", to: str = PHONE) -> OutgoingSms:
    return OutgoingSms(to=to, body="Your order 3F2A9C1E has shipped.", idempotency_key=key, reference="order_shipped")


async def test_sms_is_posted_with_an_idempotency_key(provider: LocalSmsProvider) -> None:
    sender = sms_sender(provider)
    receipt = await sender.send(text_message())
    assert not receipt.replayed
    [arrived] = provider.messages
    assert arrived.id == receipt.provider_message_id
    assert (arrived.to, arrived.sender, arrived.body) == (PHONE, "OMS", "Your order 3F2A9C1E has shipped.")
    assert arrived.idempotency_key == "3c9e2a7c-notification"
    assert arrived.status_callback == ""
    # The same key again (a retry after a crash): the provider answers with the first message.
    again = await sender.send(text_message())
    assert again.replayed
    assert again.provider_message_id == receipt.provider_message_id
    assert len(provider.messages) == 1
    assert provider.requests == 2
    await sender.close()


@pytest.mark.parametrize(
    ("status", "code"), [(500, "internal"), (503, "unavailable"), (429, "rate_limited"), (401, "unauthorized")]
)
async def test_sms_transient_failures(provider: LocalSmsProvider, status: int, code: str) -> None:
    provider.fail_next(status, code)
    with pytest.raises(SmsSendError, match=str(status)):
        await sms_sender(provider).send(text_message())
    assert provider.messages == []


async def test_sms_wrong_api_key_is_transient_not_the_messages_fault(provider: LocalSmsProvider) -> None:
    with pytest.raises(SmsSendError, match="401 unauthorized"):
        await sms_sender(provider, api_key="wrong-key-0123456789").send(text_message())


async def test_sms_provider_down_is_transient() -> None:
    port = free_port()
    sender = HttpSmsSender(SmsProviderConfig(base_url=f"http://127.0.0.1:{port}", timeout_s=2.0))
    with pytest.raises(SmsSendError, match="unreachable"):
        await sender.send(text_message())


async def test_sms_unsubscribed_and_invalid_numbers_are_permanent(provider: LocalSmsProvider) -> None:
    provider.unsubscribe(PHONE)
    with pytest.raises(SmsRejectedError) as caught:
        await sms_sender(provider).send(text_message())
    assert caught.value.reason_code == "unsubscribed"
    assert PHONE not in str(caught.value)
    with pytest.raises(SmsRejectedError) as caught:
        await sms_sender(provider).send(text_message(key="other", to="0301234567"))
    assert caught.value.reason_code == "bad_address"
    provider.fail_next(400, "content_refused")
    with pytest.raises(SmsRejectedError) as caught:
        await sms_sender(provider).send(text_message(key="third", to="+4930999999"))
    assert caught.value.reason_code == "rejected"


async def test_the_local_provider_refuses_a_reused_key_for_another_message(provider: LocalSmsProvider) -> None:
    await sms_sender(provider).send(text_message())
    with pytest.raises(SmsRejectedError, match="409 idempotency_key_reused"):
        await sms_sender(provider).send(text_message(to="+4930999999"))


async def test_the_local_provider_lists_what_arrived(provider: LocalSmsProvider) -> None:
    await sms_sender(provider).send(text_message())
    async with httpx.AsyncClient() as client:
        listed = (await client.get(provider.url + "/v1/messages")).json()["messages"]
    assert [m["to"] for m in listed] == [PHONE]


async def test_sms_asks_for_delivery_reports_when_configured(provider: LocalSmsProvider) -> None:
    sender = sms_sender(provider, status_callback_url="https://oms.example/webhooks/sms/status")
    await sender.send(text_message())
    [arrived] = provider.messages
    assert arrived.status_callback == "https://oms.example/webhooks/sms/status"


class _Reports(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Reports.received.append((self.headers.get("X-Webhook-Token", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


async def test_the_local_provider_reports_delivery_to_the_callback() -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Reports)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/sms/status"
    try:
        with LocalSmsProvider(webhook_token="hook-token", auto_report_after_s=0.05) as local:
            await sms_sender(local, api_key=None, status_callback_url=callback).send(text_message())
            await sms_sender(local, api_key=None).send(text_message(key="no-callback"))
            for _ in range(100):
                if _Reports.received:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            [first, _] = local.messages
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert _Reports.received == [("hook-token", {"id": first.id, "status": "delivered", "error_code": None})]
