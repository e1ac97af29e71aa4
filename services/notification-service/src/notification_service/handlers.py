"""Consuming: what notification-service does with the events of a polled batch, inside the transaction
the runtime opened for it (their inbox rows already written).

`OrderPlaced` stores the order's contact; every notifying event then writes one send-log row per
channel the customer wants for its message (`pending`; an explicit opt-out or a missing phone number
is recorded as `suppressed`). Nothing is sent here, so the consumer never waits for a mail server: the
dispatcher (`notification_service.dispatcher`) sends, and it is woken as soon as the transaction that
wrote new rows has committed.

The handlers only queue their events on the transaction (`_Batch`, in the session's `info`); the whole
batch is written just before the transaction commits (SQLAlchemy's `before_commit` on the batch's
session, a sync hook that awaits the writes with `await_only`, inside the session's greenlet), in two
statements straight to asyncpg however many events it holds (`adapters.batch_writes`): the contacts stored
and every named order's contact read back with its customer's preferences, then every event's rows, in
the events' order. Written per event, as before, that was two statements per event, most of the
service's CPU per order. An event whose order has no contact raises there (`UnknownOrderError`): the
batch's transaction rolls back, the runtime runs its records one by one (each its own transaction, so
its own flush), and that event alone is retried and dead-lettered.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from notification_service.adapters.batch_writes import insert_deliveries, store_and_read_contacts
from notification_service.adapters.repository import NewDelivery
from notification_service.domain.notifications import (
    CHANNEL_SMS,
    CHANNELS,
    NotifyingEvent,
    OrderContact,
    contact_from_order_placed,
    dedupe_key,
    event_context,
    kind_for,
    mask_phone,
    mask_recipient,
    notification_id_for,
    short_order_id,
)
from notification_service.domain.preferences import Preferences
from oms_events.messages import (
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
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext

log = get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


_BATCH: Final = "notification_service.batch"


class UnknownOrderError(Exception):
    """An event arrived for an order whose OrderPlaced this service never saw (so no contact).

    Retried, then dead-lettered: once the OrderPlaced is replayed, so can this event be.
    """


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


@dataclass(frozen=True, slots=True)
class _Queued:
    """A notifying event waiting for its transaction's commit, with what its log lines say about it."""

    event: NotifyingEvent
    source_event_id: UUID
    now: datetime
    log_context: dict[str, str]
    contact: OrderContact | None = None
    """The contact an `OrderPlaced` brings."""


@dataclass
class _Batch:
    """The notifying events of one transaction, planned and written at its commit."""

    session: AsyncSession
    wake: Callable[[], None]
    queued: list[_Queued] = field(default_factory=list)

    def flush(self, session: Session) -> None:
        """The `before_commit` hook (sync, run in the async session's greenlet)."""
        await_only(self.write(session))

    async def write(self, sync_session: Session) -> None:
        """The batch's contacts, then its rows, in two statements."""
        contacts: dict[UUID, tuple[OrderContact, UUID]] = {}
        for item in self.queued:
            if item.contact is not None:
                contacts.setdefault(item.contact.order_id, (item.contact, item.source_event_id))
        read = await store_and_read_contacts(
            self.session, list(contacts.values()), (q.event.order_id for q in self.queued)
        )
        planned: list[tuple[_Queued, list[NewDelivery]]] = []
        told_stored: set[UUID] = set()
        for item in self.queued:
            order_id = item.event.order_id
            if item.contact is not None:
                if order_id in read.stored and order_id not in told_stored:
                    told_stored.add(order_id)
                    log.info("order contact stored", order_ref=short_order_id(order_id), **item.log_context)
                else:
                    log.info(
                        "order contact already stored; kept the first",
                        order_ref=short_order_id(order_id),
                        **item.log_context,
                    )
            found = read.found.get(order_id)
            if found is None:
                raise UnknownOrderError(f"no contact for order {order_id}: its OrderPlaced was not seen")
            contact, prefs = found
            planned.append((item, plan_deliveries(item.event, contact, prefs, item.source_event_id, item.now)))
        inserted = await insert_deliveries(self.session, [row for _, rows in planned for row in rows])
        for item, rows in planned:
            for row in rows:
                fields = {"kind": row.kind.value, "channel": row.channel, "recipient": row.recipient_masked}
                if row.notification_id not in inserted:
                    log.info(
                        "notification already planned for this event or order; not again", **fields, **item.log_context
                    )
                elif row.status == "suppressed":
                    log.info("notification not sent", reason=row.status_reason, **fields, **item.log_context)
                else:
                    log.info(
                        "notification queued",
                        notification_id=str(row.notification_id),
                        **fields,
                        **item.log_context,
                    )
        if any(row.status == "pending" and row.notification_id in inserted for _, rows in planned for row in rows):
            # Once the transaction committed (the dispatcher would not see the rows before), and not at
            # all if it rolls back: once per transaction, however many events it holds.
            wake = self.wake

            def committed(_: Session) -> None:
                wake()

            orm_event.listen(sync_session, "after_commit", committed, once=True)


class NotificationHandlers:
    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
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
        self._queue(ctx, event, contact_from_order_placed(event))

    async def notify(self, ctx: MessageContext, event: NotifyingEvent) -> None:
        self._queue(ctx, event)

    def _queue(self, ctx: MessageContext, event: NotifyingEvent, contact: OrderContact | None = None) -> None:
        envelope = ctx.envelope
        if envelope is None:
            raise RuntimeError("notifications are sent only for consumed events")
        # The runtime's log context of the message (bound while its handler runs, gone at the commit).
        log_context = {
            "order_id": envelope.correlation_id,
            "correlation_id": envelope.correlation_id,
            "message_id": str(envelope.event_id),
            "message_type": envelope.type,
        }
        _batch_of(ctx.session, self._wake).queued.append(
            _Queued(event, envelope.event_id, self._clock(), log_context, contact)
        )


def _batch_of(session: AsyncSession, wake: Callable[[], None]) -> _Batch:
    """The transaction's batch; the first event of a transaction registers its flush at the commit."""
    sync = session.sync_session
    batch = sync.info.get(_BATCH)
    if batch is None:
        batch = sync.info[_BATCH] = _Batch(session, wake)
        orm_event.listen(sync, "before_commit", batch.flush, once=True)
    assert isinstance(batch, _Batch)
    return batch
