"""notification-service end to end through the runtime's message processor, on the real local
PostgreSQL (a throwaway schema) and a real SMTP server (aiosmtpd on a free port).

Kafka is not involved: records are handed to the processor as the consumer would, and the outbox
is read directly.
"""

import email
import email.policy
import itertools
import os
import socket
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
import structlog
from aiosmtpd.controller import Controller
from sqlalchemy import select, text
from structlog.testing import LogCapture

import notification_service.handlers
import oms_runtime.messaging
from notification_service.adapters.email_sender import (
    EmailRejectedError,
    EmailSendError,
    OutgoingEmail,
)
from notification_service.adapters.repository import NotificationRepository
from notification_service.adapters.smtp import SmtpConfig, SmtpEmailSender, build_message, provider_message_id
from notification_service.adapters.tables import metadata, send_log
from notification_service.adapters.templates import TemplateRenderer
from notification_service.domain.notifications import message_id_for, notification_id_for, short_order_id
from notification_service.handlers import NotificationHandlers
from notification_service.main import SERVICE, NotificationSettings, build
from oms_events import Envelope, Message, default_registry, topics
from oms_events.messages import (
    NotificationSent,
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from oms_runtime.db import Database
from oms_runtime.eventstore import runtime_metadata
from oms_runtime.inbox import inbox_table
from oms_runtime.messaging import MessageProcessor, Outcome, SourceRecord
from oms_runtime.outbox import outbox_table
from oms_runtime.testing import RecordingDeadLetters

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")
REGISTRY = default_registry()
CUSTOMER = "jane.doe@example.com"

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------- a real SMTP server


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
    def __init__(self, handler: CollectingSmtp, port: int) -> None:
        self.handler = handler
        self.port = port

    @property
    def received(self) -> list[tuple[list[str], EmailMessage]]:
        return self.handler.received

    def sender(self, **overrides: Any) -> SmtpEmailSender:
        config = {"port": self.port, "from_name": "OMS Orders", "timeout_s": 5.0, **overrides}
        return SmtpEmailSender(SmtpConfig(**config))


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    handler = CollectingSmtp()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(handler, port)
    finally:
        controller.stop()


def parts(message: EmailMessage) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = str(part.get_content())
    return found


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
    message = build_message(outgoing(), "orders@oms.example", "OMS Orders")
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


# ---------------------------------------------------------------- handlers, through the runtime


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    schema = f"test_notification_{uuid4().hex[:8]}"
    database = Database(DATABASE_URL, schema=schema, pool_size=4)
    await database.create_schema(runtime_metadata, metadata)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await database.dispose()


class Harness:
    def __init__(self, db: Database, smtp: Smtp) -> None:
        self.db = db
        self.smtp = smtp
        self.dead_letters = RecordingDeadLetters(SERVICE)
        self.repository = NotificationRepository()
        handlers = NotificationHandlers(
            self.repository, TemplateRenderer(), smtp.sender(), message_id_domain="oms.example"
        )
        self.processor = MessageProcessor(
            consumer=SERVICE,
            producer_name=SERVICE,
            db=db,
            registry=REGISTRY,
            handlers=handlers.handler_map(),
            dead_letters=self.dead_letters,
            max_attempts=3,
            retry_backoff_s=0.01,
        )
        self._offsets = itertools.count()

    async def deliver(self, envelope: Envelope) -> Outcome:
        return await self.processor.process(
            SourceRecord(
                topic=topics.ORDERS_EVENTS,
                partition=0,
                offset=next(self._offsets),
                key=envelope.correlation_id.encode(),
                value=envelope.to_bytes(),
            )
        )

    async def send(self, message: Message) -> tuple[Envelope, Outcome]:
        envelope = REGISTRY.wrap(message, producer="order-service")
        return envelope, await self.deliver(envelope)

    async def send_log(self, order_id: UUID) -> list[dict[str, Any]]:
        async with self.db.transaction() as session:
            rows = await session.execute(select(send_log).where(send_log.c.order_id == order_id))
            return [dict(row._mapping) for row in rows]

    async def notifications_sent(self, order_id: UUID) -> list[Envelope]:
        async with self.db.transaction() as session:
            values = await session.scalars(
                select(outbox_table.c.value)
                .where(outbox_table.c.event_type == "NotificationSent", outbox_table.c.message_key == str(order_id))
                .order_by(outbox_table.c.id)
            )
            return [Envelope.from_bytes(v) for v in values]

    async def in_inbox(self, envelope: Envelope) -> bool:
        async with self.db.transaction() as session:
            found = await session.scalar(
                select(inbox_table.c.message_id).where(
                    inbox_table.c.consumer == SERVICE, inbox_table.c.message_id == envelope.event_id
                )
            )
            return found is not None


@pytest.fixture
def harness(db: Database, smtp: Smtp) -> Harness:
    return Harness(db, smtp)


async def test_confirmation_is_emailed_once(harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    _, outcome = await harness.send(placed)
    assert outcome is Outcome.PROCESSED
    assert harness.smtp.received == [], "OrderPlaced sends nothing"

    envelope, outcome = await harness.send(confirmed)
    assert outcome is Outcome.PROCESSED
    [(rcpt, message)] = harness.smtp.received
    ref = short_order_id(placed.order_id)
    assert rcpt == [CUSTOMER]
    assert message["To"] == "Jane Doe <jane.doe@example.com>"
    assert message["From"] == "OMS Orders <orders@oms.example>"
    assert message["Subject"] == f"Your order {ref} is confirmed"
    assert message["Message-ID"] == message_id_for(envelope.event_id, "email", "oms.example")
    assert message["X-OMS-Notification-Kind"] == "order_confirmation"
    body = parts(message)
    assert set(body) == {"text/plain", "text/html"}
    assert "payment of EUR 52.30" in body["text/plain"]
    assert f"Your order {ref} is confirmed</h1>" in body["text/html"]

    # The exact same envelope again (Kafka redelivery): the inbox stops it, nothing is sent.
    assert await harness.deliver(envelope) is Outcome.DUPLICATE
    assert len(harness.smtp.received) == 1

    [row] = await harness.send_log(placed.order_id)
    assert row["source_event_id"] == envelope.event_id
    assert row["notification_id"] == notification_id_for(envelope.event_id, "email")
    assert (row["kind"], row["channel"], row["status"]) == ("order_confirmation", "email", "sent")
    assert row["recipient_masked"] == "j***@example.com"
    assert row["provider_message_id"] == "Q1"
    assert row["sent_at"] is not None

    [sent] = await harness.notifications_sent(placed.order_id)
    assert sent.causation_id == envelope.event_id
    assert sent.producer == SERVICE
    notification = REGISTRY.decode(sent)
    assert isinstance(notification, NotificationSent)
    assert notification.notification_id == row["notification_id"]
    assert (notification.kind, notification.channel, notification.recipient_masked) == (
        "order_confirmation",
        "email",
        "j***@example.com",
    )
    history = await _history(harness, placed.order_id)
    assert [(h.kind, h.status, h.recipient_masked) for h in history] == [
        ("order_confirmation", "sent", "j***@example.com")
    ]


async def _history(harness: Harness, order_id: UUID) -> list[Any]:
    async with harness.db.transaction() as session:
        return list(await harness.repository.history(session, order_id))


async def test_a_second_confirmation_event_for_the_order_sends_nothing(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    await harness.send(placed)
    await harness.send(confirmed)
    # Same fact, new event id (e.g. order-service re-emitted it): not a duplicate to the inbox ...
    again, outcome = await harness.send(confirmed)
    assert outcome is Outcome.PROCESSED
    assert await harness.in_inbox(again)
    # ... but the send log's order/kind key stops a second email.
    assert len(harness.smtp.received) == 1
    assert len(await harness.send_log(placed.order_id)) == 1
    assert len(await harness.notifications_sent(placed.order_id)) == 1


async def test_each_parcel_of_a_split_order_gets_its_shipping_notice_once(
    harness: Harness, placed: OrderPlaced, shipped: OrderShipped
) -> None:
    await harness.send(placed)
    await harness.send(shipped)
    second = shipped.model_copy(update={"shipment_id": uuid4(), "warehouse_id": "WH-LON"})
    await harness.send(second)
    await harness.send(shipped)  # the first parcel's event again, as a new event
    subjects = [m["Subject"] for _, m in harness.smtp.received]
    assert subjects == [f"Your order {short_order_id(placed.order_id)} has shipped"] * 2
    body = parts(harness.smtp.received[0][1])
    assert "Tracking number:    JJD000390007713" in body["text/plain"]
    assert 'href="https://tracking.example/track?id=JJD000390007713&amp;lang=en"' in body["text/html"]
    assert len(await harness.notifications_sent(placed.order_id)) == 2


async def test_rejection_is_emailed_with_the_reason(
    harness: Harness, placed: OrderPlaced, rejected: OrderRejected
) -> None:
    await harness.send(placed)
    _, outcome = await harness.send(rejected)
    assert outcome is Outcome.PROCESSED
    [(_, message)] = harness.smtp.received
    assert message["Subject"] == f"We could not complete your order {short_order_id(placed.order_id)}"
    assert "Reason: We do not have enough SKU-LIMITED in stock right now." in parts(message)["text/plain"]
    [sent] = await harness.notifications_sent(placed.order_id)
    assert sent.payload["kind"] == "order_rejected"


async def test_cancellation_is_emailed_once_with_the_reason(
    harness: Harness, placed: OrderPlaced, cancelled: OrderCancelled
) -> None:
    await harness.send(placed)
    envelope, outcome = await harness.send(cancelled)
    assert outcome is Outcome.PROCESSED
    [(rcpt, message)] = harness.smtp.received
    assert rcpt == [CUSTOMER]
    assert message["Subject"] == f"Your order {short_order_id(placed.order_id)} has been cancelled"
    assert message["Message-ID"] == message_id_for(envelope.event_id, "email", "oms.example")
    assert message["X-OMS-Notification-Kind"] == "order_cancelled"
    body = parts(message)
    assert "Reason: You asked us to cancel the order before it was shipped." in body["text/plain"]
    assert "has been cancelled</h1>" in body["text/html"]

    # Redelivered (inbox) and re-emitted under a new event id (dedupe key): nothing more is sent.
    assert await harness.deliver(envelope) is Outcome.DUPLICATE
    again, outcome = await harness.send(cancelled)
    assert outcome is Outcome.PROCESSED
    assert await harness.in_inbox(again)
    assert len(harness.smtp.received) == 1

    [row] = await harness.send_log(placed.order_id)
    assert (row["source_event_id"], row["kind"], row["status"]) == (envelope.event_id, "order_cancelled", "sent")
    assert row["dedupe_key"] == "order_cancelled"
    [sent] = await harness.notifications_sent(placed.order_id)
    assert sent.causation_id == envelope.event_id
    assert (sent.payload["kind"], sent.payload["channel"]) == ("order_cancelled", "email")


async def test_refund_is_emailed_once_with_the_amount(
    harness: Harness, placed: OrderPlaced, refunded: OrderPaymentRefunded
) -> None:
    await harness.send(placed)
    envelope, outcome = await harness.send(refunded)
    assert outcome is Outcome.PROCESSED
    [(rcpt, message)] = harness.smtp.received
    assert rcpt == [CUSTOMER]
    assert message["Subject"] == f"Refund issued for your order {short_order_id(placed.order_id)}"
    assert message["Message-ID"] == message_id_for(envelope.event_id, "email", "oms.example")
    assert message["X-OMS-Notification-Kind"] == "order_refunded"
    body = parts(message)
    assert "Amount refunded:  EUR 25.00" in body["text/plain"]
    assert "<strong>EUR 25.00</strong>" in body["text/html"]

    # Redelivered (inbox) and the same refund re-emitted under a new event id (dedupe key): nothing more.
    assert await harness.deliver(envelope) is Outcome.DUPLICATE
    _, outcome = await harness.send(refunded)
    assert outcome is Outcome.PROCESSED
    assert len(harness.smtp.received) == 1

    [row] = await harness.send_log(placed.order_id)
    assert (row["source_event_id"], row["kind"], row["status"]) == (envelope.event_id, "order_refunded", "sent")
    assert row["dedupe_key"] == f"order_refunded:{refunded.refund_id}"
    [sent] = await harness.notifications_sent(placed.order_id)
    assert sent.causation_id == envelope.event_id
    assert sent.payload["kind"] == "order_refunded"


async def test_a_cancelled_and_refunded_order_gets_one_email_of_each(
    harness: Harness, placed: OrderPlaced, refunded: OrderPaymentRefunded, cancelled: OrderCancelled
) -> None:
    """The cancel saga's order (captured, refunded, then cancelled), each event re-emitted once: two emails."""
    for event in (placed, refunded, cancelled, refunded, cancelled):
        _, outcome = await harness.send(event)
        assert outcome is Outcome.PROCESSED
    kinds = [m["X-OMS-Notification-Kind"] for _, m in harness.smtp.received]
    assert kinds == ["order_refunded", "order_cancelled"]
    assert sorted(r["kind"] for r in await harness.send_log(placed.order_id)) == ["order_cancelled", "order_refunded"]
    assert len(await harness.notifications_sent(placed.order_id)) == 2


async def test_a_transient_smtp_failure_rolls_back_and_the_retry_sends_once(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    await harness.send(placed)
    harness.smtp.handler.refuse_once[CUSTOMER] = "451 4.7.1 greylisted, try again later"
    _, outcome = await harness.send(confirmed)
    assert outcome is Outcome.PROCESSED  # the second attempt went through
    assert harness.smtp.handler.refuse_once == {}, "the first attempt was refused"
    assert len(harness.smtp.received) == 1
    [row] = await harness.send_log(placed.order_id)
    assert row["status"] == "sent"
    assert len(await harness.notifications_sent(placed.order_id)) == 1


async def test_smtp_down_dead_letters_without_a_trace_then_a_replay_sends(
    db: Database, smtp: Smtp, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    down = Harness(db, smtp)
    down_sender = SmtpEmailSender(SmtpConfig(port=free_port(), timeout_s=2.0))
    handlers = NotificationHandlers(down.repository, TemplateRenderer(), down_sender, message_id_domain="oms.example")
    down.processor = MessageProcessor(
        consumer=SERVICE,
        producer_name=SERVICE,
        db=db,
        registry=REGISTRY,
        handlers=handlers.handler_map(),
        dead_letters=down.dead_letters,
        max_attempts=2,
        retry_backoff_s=0.01,
    )
    await down.send(placed)
    envelope, outcome = await down.send(confirmed)
    assert outcome is Outcome.DEAD_LETTERED
    [(_, reason)] = down.dead_letters.sent
    assert "EmailSendError" in reason
    assert "jane" not in reason
    # Every attempt rolled back: no send-log row, no inbox row, no outgoing event.
    assert await down.send_log(placed.order_id) == []
    assert not await down.in_inbox(envelope)
    assert await down.notifications_sent(placed.order_id) == []

    # Replayed from the dead-letter topic once the mail server is back: sent, once.
    up = Harness(db, smtp)
    assert await up.deliver(envelope) is Outcome.PROCESSED
    assert len(smtp.received) == 1
    assert smtp.received[0][1]["Message-ID"] == message_id_for(envelope.event_id, "email", "oms.example")


async def test_a_permanent_refusal_is_recorded_and_not_retried(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    harness.smtp.handler.refuse[CUSTOMER] = "550 5.1.1 no such user"
    await harness.send(placed)
    _, outcome = await harness.send(confirmed)
    assert outcome is Outcome.PROCESSED
    assert harness.smtp.received == []
    [row] = await harness.send_log(placed.order_id)
    assert row["status"] == "rejected"
    assert "550" in row["error"]
    assert row["sent_at"] is None
    assert await harness.notifications_sent(placed.order_id) == []
    assert harness.dead_letters.sent == []


async def test_an_event_for_an_unknown_order_is_dead_lettered(harness: Harness, confirmed: OrderConfirmed) -> None:
    _, outcome = await harness.send(confirmed)
    assert outcome is Outcome.DEAD_LETTERED
    [(_, reason)] = harness.dead_letters.sent
    assert "OrderPlaced was not seen" in reason
    assert harness.smtp.received == []


async def test_a_second_order_placed_keeps_the_first_contact(
    harness: Harness, placed: OrderPlaced, confirmed: OrderConfirmed
) -> None:
    await harness.send(placed)
    changed = placed.model_copy(
        update={"customer": placed.customer.model_copy(update={"email": "someone.else@example.com"})}
    )
    _, outcome = await harness.send(changed)
    assert outcome is Outcome.PROCESSED
    await harness.send(confirmed)
    [(rcpt, _)] = harness.smtp.received
    assert rcpt == [CUSTOMER]


async def test_emails_and_phones_never_reach_the_logs(
    harness: Harness,
    placed: OrderPlaced,
    confirmed: OrderConfirmed,
    rejected: OrderRejected,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = LogCapture()
    logger: Any = structlog.wrap_logger(None, processors=[captured])
    for module in (notification_service.handlers, oms_runtime.messaging):
        monkeypatch.setattr(module, "log", logger)
    await harness.send(placed)
    await harness.send(placed)
    await harness.send(confirmed)
    await harness.send(confirmed)
    harness.smtp.handler.refuse[CUSTOMER] = "550 5.1.1 <jane.doe@example.com>: no such user"
    await harness.send(rejected)
    logged = repr(captured.entries)
    assert "email sent" in logged
    assert "j***@example.com" in logged
    assert "refused" in logged
    for secret in (CUSTOMER, "jane.doe", "1234567"):
        assert secret not in logged


async def test_build_wires_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_HOST", "mail.internal.example")
    monkeypatch.setenv("SMTP_PORT", "587")
    monkeypatch.setenv("SMTP_FROM", "shop@brand.example")
    monkeypatch.setenv("SMTP_USERNAME", "mailer")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    settings = NotificationSettings()
    config = settings.smtp_config()
    assert (config.host, config.port, config.from_address) == ("mail.internal.example", 587, "shop@brand.example")
    assert (config.username, config.password, config.start_tls) == ("mailer", "s3cret", True)
    assert settings.message_id_domain == "brand.example"
    assert "s3cret" not in repr(settings)
    host = build(settings)
    try:
        assert list(host.processors) == [SERVICE]
        assert host.db.schema == "notification_service"
    finally:
        await host.db.dispose()


def test_smtp_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_FROM", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)
    config = NotificationSettings().smtp_config()
    assert (config.host, config.port, config.from_address) == ("127.0.0.1", 1025, "orders@oms.example")
    assert (config.username, config.password, config.start_tls) == (None, None, None)
