"""The harness of notification-service's delivery tests: events through the runtime's message processor
(inbox, transaction, outbox) into the send log on the real PostgreSQL, and dispatchers sending to a real
SMTP server and SMS provider, with a test clock."""

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Self
from uuid import UUID

from notification_smtp import Smtp
from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from notification_service.adapters.email_sender import EmailSender
from notification_service.adapters.http_sms import HttpSmsSender, SmsProviderConfig
from notification_service.adapters.repository import NotificationRepository
from notification_service.adapters.sms_sender import SmsSender
from notification_service.adapters.smtp import SmtpConfig, SmtpEmailSender
from notification_service.adapters.tables import deliveries
from notification_service.adapters.templates import TemplateRenderer
from notification_service.dispatcher import Dispatcher
from notification_service.domain.notifications import OrderContact
from notification_service.domain.preferences import Preferences
from notification_service.handlers import NotificationHandlers
from notification_service.main import SERVICE
from notification_service.testing import LocalSmsProvider
from oms_events import Envelope, Message, default_registry
from oms_runtime.db import Database
from oms_runtime.driver import listen_to_driver_statements
from oms_runtime.messaging import MessageProcessor, Outcome, SourceRecord
from oms_runtime.outbox import outbox_table
from oms_runtime.testing import RecordingDeadLetters

REGISTRY = default_registry()
CUSTOMER = "jane.doe@example.com"
PHONE = "+49301234567"
RETRY_BASE_S = 10.0


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, nothing catches it."""


class CrashAfterSending:
    """A sender that hands the message over and then 'dies' before the outcome is recorded."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, message: Any) -> Any:
        await self._inner.send(message)
        raise Crash


class Harness:
    def __init__(
        self,
        db: Database,
        smtp: Smtp,
        provider: LocalSmsProvider,
        clock: Clock | None = None,
        *,
        max_attempts: int = 4,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.smtp, self.smtp_port = smtp.handler, smtp.port
        self.provider = provider
        self.clock = clock or Clock(datetime(2025, 3, 12, 10, 0, tzinfo=UTC))
        self.repository = NotificationRepository()
        self.dead_letters = RecordingDeadLetters(SERVICE)
        self.max_attempts = max_attempts
        self.email_sender: EmailSender = SmtpEmailSender(
            SmtpConfig(port=self.smtp_port, from_name="OMS Orders", timeout_s=5.0)
        )
        self.sms_sender: SmsSender = HttpSmsSender(SmsProviderConfig(base_url=provider.url, timeout_s=5.0))
        handlers = NotificationHandlers(clock=self.clock, wake=wake)
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

    def dispatcher(
        self, email_sender: Any = None, sms_sender: Any = None, renderer: Any = None, **settings: Any
    ) -> Dispatcher:
        """A dispatcher as a (re)started process has one: nothing but the database carries over."""
        return Dispatcher(
            self.db,
            self.repository,
            renderer or TemplateRenderer(),
            email_sender or self.email_sender,
            sms_sender or self.sms_sender,
            REGISTRY,
            producer_name=SERVICE,
            message_id_domain="oms.example",
            clock=self.clock,
            max_attempts=self.max_attempts,
            retry_base_s=RETRY_BASE_S,
            lease_s=60,
            **settings,
        )

    async def deliver(self, envelope: Envelope) -> Outcome:
        return await self.processor.process(
            SourceRecord(
                "oms.orders.events", 0, next(self._offsets), envelope.correlation_id.encode(), envelope.to_bytes()
            )
        )

    async def deliver_batch(self, envelopes: list[Envelope]) -> list[Outcome]:
        """The envelopes as one polled batch (one transaction for all, as the runtime's consumer does)."""
        return await self.processor.process_batch(
            [
                SourceRecord("oms.orders.events", 0, next(self._offsets), e.correlation_id.encode(), e.to_bytes())
                for e in envelopes
            ]
        )

    async def send(self, message: Message) -> tuple[Envelope, Outcome]:
        self.clock.advance(milliseconds=1)  # events arrive one after the other; their messages go in that order
        envelope = REGISTRY.wrap(message, producer="order-service")
        return envelope, await self.deliver(envelope)

    async def dispatch(self, dispatcher: Dispatcher | None = None) -> None:
        """Runs the dispatcher until nothing is due at the clock's time."""
        dispatcher = dispatcher or self.dispatcher()
        for _ in range(20):
            if not await dispatcher.run_once():
                return
        raise AssertionError("the dispatcher never ran out of due messages")

    async def rows(self, order_id: UUID) -> list[dict[str, Any]]:
        async with self.db.transaction() as session:
            result = await session.execute(
                select(deliveries).where(deliveries.c.order_id == order_id).order_by(deliveries.c.created_at)
            )
            return [dict(row._mapping) for row in result]

    async def row(self, order_id: UUID, kind: str, channel: str) -> dict[str, Any]:
        [found] = [r for r in await self.rows(order_id) if r["kind"] == kind and r["channel"] == channel]
        return found

    async def emitted(self, order_id: UUID, message_type: str) -> list[Envelope]:
        async with self.db.transaction() as session:
            values = await session.scalars(
                select(outbox_table.c.value)
                .where(outbox_table.c.event_type == message_type, outbox_table.c.message_key == str(order_id))
                .order_by(outbox_table.c.id)
            )
            return [Envelope.from_bytes(v) for v in values]

    async def repository_contact(self, order_id: UUID) -> OrderContact | None:
        async with self.db.transaction() as session:
            return await self.repository.contact(session, order_id)

    async def set_preferences(self, prefs: Preferences) -> None:
        async with self.db.transaction() as session:
            await self.repository.save_preferences(session, prefs, "test", self.clock())

    def mails(self, order_id: UUID) -> list[EmailMessage]:
        return [m for _, m in self.smtp.received if m["X-OMS-Order-Id"] == str(order_id)]


class Statements:
    """The statements (first word; `texts`: in full) and commits the database sees while in the `with` block."""

    def __init__(self, db: Database) -> None:
        self._engine = db.engine.sync_engine
        self.seen: list[str] = []
        self.texts: list[str] = []
        self.through_sqlalchemy: list[str] = []
        """The statements SQLAlchemy sent (the others went straight to asyncpg, `oms_runtime.driver`)."""

    def _statement(self, conn: Connection | None, cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement.split(None, 1)[0].upper())
        self.texts.append(statement)
        if conn is not None:
            self.through_sqlalchemy.append(statement)

    def _commit(self, conn: Connection) -> None:
        self.seen.append("COMMIT")

    def __enter__(self) -> Self:
        event.listen(self._engine, "before_cursor_execute", self._statement)
        event.listen(self._engine, "commit", self._commit)
        # The runtime sends its own statements (inbox, outbox, event appends) straight to asyncpg.
        self._stop_driver = listen_to_driver_statements(lambda statement: self._statement(None, None, statement))
        return self

    def __exit__(self, *_: object) -> None:
        self._stop_driver()
        event.remove(self._engine, "before_cursor_execute", self._statement)
        event.remove(self._engine, "commit", self._commit)
