"""Use cases of notification-service: remember an order's contact, and email the customer about it.

Sending at most once per event, in this order, inside the transaction the runtime opened (its
inbox row already written):
1. claim: insert the send-log row; a unique key refuses a second message for the same event, or
   for the same order and kind, and then nothing is sent;
2. send over SMTP; a transient failure raises, the transaction rolls back (the claim with it) and
   the runtime retries the event;
3. mark the row sent, queue `NotificationSent` in the outbox, and let the runtime commit.
A crash between 2 and 3 sends the message again on redelivery; it then carries the same
Message-ID, so the receiving side can drop it (see the service README).
"""

from datetime import UTC, datetime
from uuid import UUID

from notification_service.adapters.email_sender import EmailRejectedError, EmailSender, OutgoingEmail
from notification_service.adapters.repository import NotificationRepository
from notification_service.adapters.templates import TemplateRenderer
from notification_service.domain.notifications import (
    CHANNEL_EMAIL,
    NotifyingEvent,
    contact_from_order_placed,
    plan_email,
    short_order_id,
)
from oms_events.messages import (
    NotificationSent,
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext

log = get_logger(__name__)


class UnknownOrderError(Exception):
    """An order event arrived for an order whose OrderPlaced this service never saw (so no contact).

    Retried, then dead-lettered: once the OrderPlaced is replayed, so can this event be.
    """


def _source_event_id(ctx: MessageContext) -> UUID:
    envelope = ctx.envelope
    if envelope is None:
        raise RuntimeError("notifications are sent only for consumed events")
    return envelope.event_id


class NotificationHandlers:
    def __init__(
        self,
        repository: NotificationRepository,
        renderer: TemplateRenderer,
        sender: EmailSender,
        *,
        message_id_domain: str,
    ) -> None:
        self._repo = repository
        self._renderer = renderer
        self._sender = sender
        self._message_id_domain = message_id_domain

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(OrderPlaced, self.remember_order)
        handlers.register(OrderConfirmed, self.notify)
        handlers.register(OrderShipped, self.notify)
        handlers.register(OrderRejected, self.notify)
        handlers.register(OrderCancelled, self.notify)
        handlers.register(OrderPaymentRefunded, self.notify)
        return handlers

    async def remember_order(self, ctx: MessageContext, event: OrderPlaced) -> None:
        stored = await self._repo.save_contact(ctx.session, contact_from_order_placed(event), _source_event_id(ctx))
        if stored:
            log.info("order contact stored", order_ref=short_order_id(event.order_id))
        else:
            log.info("order contact already stored; kept the first", order_ref=short_order_id(event.order_id))

    async def notify(self, ctx: MessageContext, event: NotifyingEvent) -> None:
        contact = await self._repo.contact(ctx.session, event.order_id)
        if contact is None:
            raise UnknownOrderError(f"no contact for order {event.order_id}: its OrderPlaced was not seen")
        plan = plan_email(
            event, contact, source_event_id=_source_event_id(ctx), message_id_domain=self._message_id_domain
        )
        rendered = self._renderer.render(plan.kind, plan.locale, plan.context)
        fields = {"kind": plan.kind.value, "channel": plan.channel, "recipient": plan.recipient_masked}
        if not await self._repo.claim(ctx.session, plan):
            log.info("notification already sent for this event or order; not sending again", **fields)
            return
        email = OutgoingEmail(
            recipient=plan.recipient,
            recipient_name=plan.recipient_name,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=plan.message_id,
            headers={
                "X-OMS-Order-Id": str(plan.order_id),
                "X-OMS-Notification-Id": str(plan.notification_id),
                "X-OMS-Notification-Kind": plan.kind.value,
            },
        )
        try:
            # EmailSendError (transient) propagates: the runtime rolls back the claim and retries.
            receipt = await self._sender.send(email)
        except EmailRejectedError as exc:
            # Refused for good: recorded (so history shows it and nothing retries it), no NotificationSent.
            await self._repo.mark_rejected(ctx.session, plan, str(exc))
            log.warning("email refused by the mail server; not retrying", error=str(exc), **fields)
            return
        await self._repo.mark_sent(ctx.session, plan, receipt.provider_message_id, datetime.now(UTC), rendered.locale)
        await ctx.emit(
            NotificationSent(
                order_id=plan.order_id,
                notification_id=plan.notification_id,
                kind=plan.kind.value,
                channel=CHANNEL_EMAIL,
                recipient_masked=plan.recipient_masked,
            )
        )
        log.info(
            "email sent",
            notification_id=str(plan.notification_id),
            provider_message_id=receipt.provider_message_id,
            **fields,
        )
