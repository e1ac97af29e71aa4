"""Use cases of notification-service.

Consuming (`NotificationHandlers`), inside the transaction the runtime opened for the event (its inbox
row already written): remember the order's contact from `OrderPlaced`, and write one send-log row per
channel the customer wants for the event's message (`pending`; an explicit opt-out or a missing phone
number is recorded as `suppressed`). Nothing is sent here: the consumer never waits for a mail server.

Sending (`Dispatcher`, a background task): every due row is, one at a time,
1. claimed in a transaction of its own: preferences read again (an opt-out since then suppresses it,
   SMS in the customer's quiet hours is deferred to their end), the message rendered, the row marked
   `sending` with a lease, committed;
2. handed to the provider, with the notification id as the SMS idempotency key and in the email's
   Message-ID;
3. recorded: `sent` + `NotificationSent`, or `failed` + `NotificationFailed` (permanent refusal, or
   transient failures until the attempts ran out), or back to `pending` with a backoff.
A process that dies between 2 and 3 leaves the row `sending`; when its lease ends it is claimed again.
An SMS is then sent again with the same idempotency key, and the provider answers with the first
message instead of sending a second. SMTP has no such key, so an email found that way is not sent
again: it becomes `unconfirmed` (the history shows it, and it went out at most once).
"""

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from notification_service.adapters.email_sender import (
    EmailRejectedError,
    EmailSender,
    EmailSendError,
    OutgoingEmail,
)
from notification_service.adapters.repository import Delivery, NewDelivery, NotificationRepository
from notification_service.adapters.sms_sender import OutgoingSms, SmsRejectedError, SmsSender, SmsSendError
from notification_service.adapters.templates import TemplateRenderer
from notification_service.domain.notifications import (
    CHANNEL_EMAIL,
    CHANNEL_SMS,
    CHANNELS,
    NotificationKind,
    NotifyingEvent,
    OrderContact,
    contact_from_order_placed,
    dedupe_key,
    event_context,
    kind_for,
    mask_phone,
    mask_recipient,
    message_id_for,
    normalise_phone,
    notification_id_for,
    short_order_id,
    template_context,
)
from notification_service.domain.preferences import Preferences
from oms_events import Message, MessageRegistry
from oms_events.messages import (
    NotificationFailed,
    NotificationSent,
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentDeclined,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderRejected,
    OrderReturnRefunded,
    OrderShipped,
    OrderShortShipRefunded,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentOutForDelivery,
)
from oms_runtime.db import Database
from oms_runtime.logging import get_logger, mask_text
from oms_runtime.messaging import HandlerMap, MessageContext
from oms_runtime.outbox import Outbox
from oms_runtime.periodic import PeriodicTask

log = get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


RETRYABLE_STATUSES = frozenset({"failed", "unconfirmed", "undelivered"})


class RetryNotAllowedError(Exception):
    """Only a message that failed, or whose delivery is unknown, may be sent again by hand."""


class UnknownOrderError(Exception):
    """An event arrived for an order whose OrderPlaced this service never saw (so no contact).

    Retried, then dead-lettered: once the OrderPlaced is replayed, so can this event be.
    """


def _source_event_id(ctx: MessageContext) -> UUID:
    envelope = ctx.envelope
    if envelope is None:
        raise RuntimeError("notifications are sent only for consumed events")
    return envelope.event_id


def plan_deliveries(
    event: NotifyingEvent, contact: OrderContact, prefs: Preferences, source_event_id: UUID, now: datetime
) -> list[NewDelivery]:
    """The send-log rows an event calls for: one per channel the customer wants; an explicit opt-out
    and an SMS without a usable phone number are recorded as `suppressed` (support can see why)."""
    if contact.order_id != event.order_id:
        raise ValueError(f"contact of order {contact.order_id} used for an event of order {event.order_id}")
    kind = kind_for(event)
    planned = []
    for channel in CHANNELS:
        status, reason = "pending", None
        if prefs.opted_out(kind, channel):
            status, reason = "suppressed", "opted_out"
        elif not prefs.wants(kind, channel):
            continue
        if channel == CHANNEL_SMS:
            masked = mask_phone(contact.phone) if contact.phone else "-"
            if status == "pending" and not contact.phone:
                status, reason = "suppressed", "no_phone_number"
        else:
            masked = mask_recipient(contact.email)
        planned.append(
            NewDelivery(
                notification_id=notification_id_for(source_event_id, channel),
                source_event_id=source_event_id,
                channel=channel,
                order_id=event.order_id,
                customer_id=contact.customer_id,
                kind=kind,
                dedupe_key=dedupe_key(event),
                event_context=event_context(event),
                recipient_masked=masked,
                status=status,
                status_reason=reason,
                due_at=now,
            )
        )
    return planned


class NotificationHandlers:
    def __init__(
        self,
        repository: NotificationRepository,
        *,
        clock: Clock = utc_now,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._repo = repository
        self._clock = clock
        self._wake = wake

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(OrderPlaced, self.order_placed)
        handlers.register(OrderConfirmed, self.notify)
        handlers.register(OrderPaymentDeclined, self.notify)
        handlers.register(OrderShipped, self.notify)
        handlers.register(OrderRejected, self.notify)
        handlers.register(OrderCancelled, self.notify)
        handlers.register(OrderPaymentRefunded, self.notify)
        handlers.register(OrderReturnRefunded, self.notify)
        handlers.register(OrderShortShipRefunded, self.notify)
        handlers.register(ShipmentOutForDelivery, self.notify)
        handlers.register(ShipmentDelivered, self.notify)
        handlers.register(ShipmentDeliveryFailed, self.delivery_failed)
        return handlers

    async def delivery_failed(self, ctx: MessageContext, event: ShipmentDeliveryFailed) -> None:
        if event.superseded:
            # Reported after a later status (the parcel may well be delivered): old news, not sent.
            log.info("superseded delivery failure; no message", shipment_ref=event.shipment_id.hex[:8].upper())
            return
        await self.notify(ctx, event)

    async def order_placed(self, ctx: MessageContext, event: OrderPlaced) -> None:
        stored = await self._repo.save_contact(ctx.session, contact_from_order_placed(event), _source_event_id(ctx))
        if stored:
            log.info("order contact stored", order_ref=short_order_id(event.order_id))
        else:
            log.info("order contact already stored; kept the first", order_ref=short_order_id(event.order_id))
        await self.notify(ctx, event)

    async def notify(self, ctx: MessageContext, event: NotifyingEvent) -> None:
        contact = await self._repo.contact(ctx.session, event.order_id)
        if contact is None:
            raise UnknownOrderError(f"no contact for order {event.order_id}: its OrderPlaced was not seen")
        prefs = await self._repo.preferences(ctx.session, contact.customer_id)
        planned = plan_deliveries(event, contact, prefs, _source_event_id(ctx), self._clock())
        inserted = await self._repo.add_deliveries(ctx.session, planned, self._clock())
        for item in planned:
            fields = {"kind": item.kind.value, "channel": item.channel, "recipient": item.recipient_masked}
            if item.notification_id not in inserted:
                log.info("notification already planned for this event or order; not again", **fields)
            elif item.status == "suppressed":
                log.info("notification not sent", reason=item.status_reason, **fields)
            else:
                log.info("notification queued", notification_id=str(item.notification_id), **fields)
        if inserted:
            self._wake()


class Dispatcher:
    """Sends due messages from the send log; retries with backoff; defers SMS in quiet hours."""

    def __init__(
        self,
        db: Database,
        repository: NotificationRepository,
        renderer: TemplateRenderer,
        email: EmailSender,
        sms: SmsSender,
        registry: MessageRegistry,
        *,
        producer_name: str,
        message_id_domain: str,
        clock: Clock = utc_now,
        max_attempts: int = 6,
        retry_base_s: float = 5.0,
        retry_max_s: float = 900.0,
        lease_s: float = 120.0,
        poll_interval_s: float = 0.5,
        batch_size: int = 50,
        concurrency: int = 8,
    ) -> None:
        self._db = db
        self._repo = repository
        self._renderer = renderer
        self._email = email
        self._sms = sms
        self._registry = registry
        self._producer_name = producer_name
        self._message_id_domain = message_id_domain
        self._clock = clock
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._lease = timedelta(seconds=lease_s)
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._outbox = Outbox()
        self._loop = PeriodicTask(
            "notification-dispatcher",
            self.run_once,
            interval_s=poll_interval_s,
            # A full round may have left more due: go on at once rather than after the interval.
            again_while_busy=True,
            # The wake comes before the consumer's commit: give it a moment to land.
            settle_s=0.02,
            failure_pause_s=1.0,
        )

    # ------------------------------------------------------------ the loop

    def wake(self) -> None:
        self._loop.wake()

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> int:
        """Handles every row due now (up to one batch); returns how many it handled.

        Orders are served side by side (up to `concurrency` at once: a slow mail server must not make
        every customer wait in one line), one order's messages one after the other, in the order they
        became due, so a customer never reads "shipped" before "confirmed"."""
        async with self._db.transaction() as session:
            due = await self._repo.due(session, self._clock(), self._batch_size)
        by_order: dict[UUID, list[UUID]] = {}
        for notification_id, order_id in due:
            by_order.setdefault(order_id, []).append(notification_id)
        slots = asyncio.Semaphore(self._concurrency)

        async def one_order(ids: list[UUID]) -> None:
            async with slots:
                for notification_id in ids:
                    await self.deliver(notification_id)

        await asyncio.gather(*(one_order(ids) for ids in by_order.values()))
        return len(due)

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self._retry_max_s, self._retry_base_s * 2 ** max(0, attempts - 1)))

    # ------------------------------------------------------------ one message

    async def deliver(self, notification_id: UUID) -> None:
        """Claim, send, record one row (nothing when it is no longer due or another worker has it)."""
        try:
            prepared = await self._claim(notification_id)
        except Exception as exc:
            # A row that cannot even be prepared (e.g. a template error) must not block the others.
            log.exception("notification could not be prepared", notification_id=str(notification_id))
            await self._claim_failed(notification_id, f"{type(exc).__name__}: {mask_text(str(exc))}")
            return
        if prepared is None:
            return
        row, message = prepared
        fields = {"kind": row.kind, "channel": row.channel, "recipient": row.recipient_masked}
        try:
            if isinstance(message, OutgoingEmail):
                receipt_id = (await self._email.send(message)).provider_message_id
            else:
                sms_receipt = await self._sms.send(message)
                receipt_id = sms_receipt.provider_message_id
                if sms_receipt.replayed:
                    log.info("provider already had this message (idempotency key); not sent twice", **fields)
        except (EmailRejectedError, SmsRejectedError) as exc:
            await self._fail(row, exc.reason_code, str(exc))
            log.warning("notification refused for good; not retrying", reason=exc.reason_code, error=str(exc), **fields)
            return
        except (EmailSendError, SmsSendError) as exc:
            await self._retry_or_give_up(row, str(exc))
            return
        except Exception as exc:  # a sender's bug: retried like a transient failure, and logged
            log.exception("sender failed unexpectedly", **fields)
            await self._retry_or_give_up(row, f"{type(exc).__name__}: {mask_text(str(exc))}")
            return
        await self._sent(row, receipt_id)
        log.info(
            "notification sent", notification_id=str(row.notification_id), provider_message_id=receipt_id, **fields
        )

    async def _claim(self, notification_id: UUID) -> tuple[Delivery, OutgoingEmail | OutgoingSms] | None:
        now = self._clock()
        async with self._db.transaction() as session:
            row = await self._repo.lock_due(session, notification_id, now)
            if row is None:
                return None
            fields = {"kind": row.kind, "channel": row.channel, "recipient": row.recipient_masked}
            if row.status == "sending" and row.channel == CHANNEL_EMAIL:
                # The attempt died between handing the email over and recording it: it may have gone out.
                await self._repo.update(session, row.notification_id, now, status="unconfirmed", lease_until=None)
                log.warning("email attempt ended unrecorded; not sending it again", **fields)
                return None
            contact = await self._repo.contact(session, row.order_id)
            if contact is None:  # the contact was erased
                await self._repo.update(
                    session, row.notification_id, now, status="suppressed", status_reason="no_contact"
                )
                return None
            prefs = await self._repo.preferences(session, row.customer_id)
            kind = NotificationKind(row.kind)
            if row.status != "sending" and not prefs.wants(kind, row.channel):
                await self._repo.update(
                    session, row.notification_id, now, status="suppressed", status_reason="opted_out"
                )
                log.info("notification not sent", reason="opted_out", **fields)
                return None
            if row.channel == CHANNEL_SMS and row.status != "sending":
                held_until = prefs.sms_held_until(now)
                if held_until is not None:
                    await self._repo.update(
                        session,
                        row.notification_id,
                        now,
                        status="deferred",
                        status_reason="quiet_hours",
                        due_at=held_until,
                    )
                    log.info("SMS deferred to the end of quiet hours", due_at=held_until.isoformat(), **fields)
                    return None
            context = template_context(contact, row.event_context)
            # An attempt claimed again renders as the first did: the provider compares the text.
            first_locale = row.locale if row.status == "sending" else None
            locale = first_locale or prefs.locale or contact.locale
            message: OutgoingEmail | OutgoingSms
            if row.channel == CHANNEL_EMAIL:
                rendered = self._renderer.render(kind, locale, context)
                message_id = message_id_for(row.source_event_id, CHANNEL_EMAIL, self._message_id_domain)
                message = OutgoingEmail(
                    recipient=contact.email,
                    recipient_name=contact.name,
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    message_id=message_id,
                    headers={
                        "X-OMS-Order-Id": str(row.order_id),
                        "X-OMS-Notification-Id": str(row.notification_id),
                        "X-OMS-Notification-Kind": row.kind,
                    },
                )
                used_locale, extra = rendered.locale, {"message_id": message_id}
            else:
                number = normalise_phone(contact.phone or "")
                if number is None:
                    await self._fail_in(session, row, "bad_address", "not an international phone number", now)
                    log.warning("notification refused for good; not retrying", reason="bad_address", **fields)
                    return None
                sms = self._renderer.render_sms(kind, locale, context)
                # A resend an operator asked for is a new message to the provider: a new key.
                key = str(row.notification_id) if row.resends == 0 else f"{row.notification_id}:{row.resends}"
                message = OutgoingSms(to=number, body=sms.body, idempotency_key=key, reference=row.kind)
                used_locale, extra = sms.locale, {}
            await self._repo.update(
                session,
                row.notification_id,
                now,
                status="sending",
                status_reason=None,
                attempts=row.attempts + 1,
                lease_until=now + self._lease,
                locale=used_locale,
                **extra,
            )
        return dataclasses.replace(row, attempts=row.attempts + 1), message

    async def _emit(self, session: Any, message: Message, source_event_id: UUID) -> None:
        envelope = self._registry.wrap(message, producer=self._producer_name)
        envelope = envelope.model_copy(update={"causation_id": source_event_id})
        await self._outbox.add(session, message.topic, message.key, envelope)

    async def _sent(self, row: Delivery, provider_message_id: str) -> None:
        now = self._clock()
        async with self._db.transaction() as session:
            await self._repo.update(
                session,
                row.notification_id,
                now,
                status="sent",
                provider_message_id=provider_message_id[:300],
                sent_at=now,
                lease_until=None,
                error=None,
            )
            await self._emit(
                session,
                NotificationSent(
                    order_id=row.order_id,
                    notification_id=row.notification_id,
                    kind=row.kind,
                    channel=CHANNEL_EMAIL if row.channel == CHANNEL_EMAIL else CHANNEL_SMS,
                    recipient_masked=row.recipient_masked,
                ),
                row.source_event_id,
            )

    async def _fail_in(self, session: Any, row: Delivery, reason_code: str, error: str, now: datetime) -> None:
        await self._repo.update(
            session,
            row.notification_id,
            now,
            status="failed",
            status_reason=reason_code,
            error=error[:2000],
            lease_until=None,
        )
        await self._emit(
            session,
            NotificationFailed(
                order_id=row.order_id,
                notification_id=row.notification_id,
                kind=row.kind,
                channel=CHANNEL_EMAIL if row.channel == CHANNEL_EMAIL else CHANNEL_SMS,
                recipient_masked=row.recipient_masked,
                reason_code=reason_code,
                reason=error[:500],
                attempts=row.attempts,
            ),
            row.source_event_id,
        )

    async def _fail(self, row: Delivery, reason_code: str, error: str) -> None:
        async with self._db.transaction() as session:
            await self._fail_in(session, row, reason_code, error, self._clock())

    async def resend(self, notification_id: UUID, requested_by: str) -> Delivery | None:
        """Queues a failed, unconfirmed or undelivered message to be sent again now (an operator's call:
        an unconfirmed email may then arrive twice, with the same Message-ID). None: no such message."""
        now = self._clock()
        async with self._db.transaction() as session:
            row = await self._repo.get(session, notification_id, for_update=True)
            if row is None:
                return None
            if row.status not in RETRYABLE_STATUSES:
                raise RetryNotAllowedError(f"the message is {row.status}")
            values: dict[str, Any] = {
                "status": "pending",
                "status_reason": "resend_requested",
                "attempts": 0,
                "due_at": now,
                "lease_until": None,
                "resends": row.resends + 1,
            }
            await self._repo.update(session, row.notification_id, now, **values)
        log.info(
            "notification to be sent again",
            kind=row.kind,
            channel=row.channel,
            recipient=row.recipient_masked,
            previous_status=row.status,
            requested_by=requested_by,
        )
        self.wake()
        return dataclasses.replace(row, **values, updated_at=now)

    async def record_sms_report(
        self, provider_message_id: str, delivered: bool, error_code: str | None
    ) -> Delivery | None:
        """The provider's delivery report of an SMS: `sent` becomes `delivered`, or `undelivered` (then
        published as `NotificationFailed`). None when no SMS has that provider id (yet: a report can
        overtake the recording of the send, and providers retry a report that is not acknowledged).
        A second report of a settled message changes nothing."""
        now = self._clock()
        async with self._db.transaction() as session:
            row = await self._repo.by_provider_id(session, CHANNEL_SMS, provider_message_id)
            if row is None or row.status != "sent":
                return row
            if delivered:
                await self._repo.update(session, row.notification_id, now, status="delivered", delivered_at=now)
                return dataclasses.replace(row, status="delivered", delivered_at=now)
            reason = f"the provider could not deliver it ({error_code or 'no code'})"
            await self._fail_in(session, row, "undelivered", reason, now)
            await self._repo.update(session, row.notification_id, now, status="undelivered")
        log.warning("SMS not delivered", kind=row.kind, recipient=row.recipient_masked, error_code=error_code)
        return dataclasses.replace(row, status="undelivered", status_reason="undelivered")

    async def _claim_failed(self, notification_id: UUID, error: str) -> None:
        now = self._clock()
        async with self._db.transaction() as session:
            found = await self._repo.lock_due(session, notification_id, now)
            if found is None:
                return
            row = dataclasses.replace(found, attempts=found.attempts + 1)
            if row.attempts >= self._max_attempts:
                await self._fail_in(session, row, "error", f"{row.attempts} attempts failed; last: {error}", now)
                await self._repo.update(session, row.notification_id, now, attempts=row.attempts)
            else:
                await self._repo.update(
                    session,
                    row.notification_id,
                    now,
                    status="pending",
                    attempts=row.attempts,
                    due_at=now + self.backoff(row.attempts),
                    lease_until=None,
                    error=error[:2000],
                )

    async def _retry_or_give_up(self, row: Delivery, error: str) -> None:
        fields = {"kind": row.kind, "channel": row.channel, "recipient": row.recipient_masked}
        if row.attempts >= self._max_attempts:
            await self._fail(row, "gave_up", f"{row.attempts} attempts failed; last: {error}")
            log.warning("notification failed on every attempt; giving up", attempts=row.attempts, error=error, **fields)
            return
        now = self._clock()
        due_at = now + self.backoff(row.attempts)
        async with self._db.transaction() as session:
            await self._repo.update(
                session, row.notification_id, now, status="pending", due_at=due_at, lease_until=None, error=error[:2000]
            )
        log.warning(
            "notification failed; will retry", attempt=row.attempts, due_at=due_at.isoformat(), error=error, **fields
        )
