"""Consuming: what notification-service does with an event, inside the transaction the runtime opened
for it (its inbox row already written).

`OrderPlaced` stores the order's contact; every notifying event then writes one send-log row per
channel the customer wants for its message (`pending`; an explicit opt-out or a missing phone number
is recorded as `suppressed`). Nothing is sent here, so the consumer never waits for a mail server: the
dispatcher (`notification_service.dispatcher`) sends, and it is woken as soon as the transaction that
wrote new rows has committed. An event costs two statements: its order's contact with the customer's
preferences (for `OrderPlaced`: the contact stored, and the preferences read, in one), then its rows.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from notification_service.adapters.repository import NewDelivery, NotificationRepository
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


_WAKE_AT_COMMIT: Final = "notification_service.wake_at_commit"


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
        contact = contact_from_order_placed(event)
        prefs = await self._repo.save_contact(ctx.session, contact, _source_event_id(ctx))
        if prefs is not None:
            log.info("order contact stored", order_ref=short_order_id(event.order_id))
            await self._plan(ctx, event, contact, prefs)
        else:
            log.info("order contact already stored; kept the first", order_ref=short_order_id(event.order_id))
            await self.notify(ctx, event)

    async def notify(self, ctx: MessageContext, event: NotifyingEvent) -> None:
        found = await self._repo.contact_and_preferences(ctx.session, event.order_id)
        if found is None:
            raise UnknownOrderError(f"no contact for order {event.order_id}: its OrderPlaced was not seen")
        await self._plan(ctx, event, *found)

    async def _plan(
        self, ctx: MessageContext, event: NotifyingEvent, contact: OrderContact, prefs: Preferences
    ) -> None:
        planned = plan_deliveries(event, contact, prefs, _source_event_id(ctx), self._clock())
        inserted = set(await self._repo.add_deliveries(ctx.session, planned, self._clock()))
        for item in planned:
            fields = {"kind": item.kind.value, "channel": item.channel, "recipient": item.recipient_masked}
            if item.notification_id not in inserted:
                log.info("notification already planned for this event or order; not again", **fields)
            elif item.status == "suppressed":
                log.info("notification not sent", reason=item.status_reason, **fields)
            else:
                log.info("notification queued", notification_id=str(item.notification_id), **fields)
        if any(item.status == "pending" and item.notification_id in inserted for item in planned):
            self._wake_at_commit(ctx.session)

    def _wake_at_commit(self, session: AsyncSession) -> None:
        """Wakes the dispatcher once the transaction commits (not before: it would not see the rows
        yet), and not at all if it rolls back. Once per transaction, however many events it holds."""
        sync = session.sync_session
        if sync.info.get(_WAKE_AT_COMMIT):
            return
        sync.info[_WAKE_AT_COMMIT] = True
        wake = self._wake

        def committed(_: Session) -> None:
            wake()

        orm_event.listen(sync, "after_commit", committed, once=True)
