"""Order contacts and the send log in PostgreSQL. Every method runs inside the caller's transaction."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.tables import order_contacts, send_log
from notification_service.domain.notifications import EmailPlan, LineSummary, OrderContact


@dataclass(frozen=True)
class SentNotification:
    """One row of an order's notification history (no personal data beyond the masked recipient)."""

    notification_id: UUID
    order_id: UUID
    source_event_id: UUID
    kind: str
    channel: str
    status: str
    recipient_masked: str
    message_id: str
    provider_message_id: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None


def _lines_json(contact: OrderContact) -> list[dict[str, Any]]:
    return [{"sku": ln.sku, "quantity": ln.quantity, "unit_price_minor": ln.unit_price_minor} for ln in contact.lines]


class NotificationRepository:
    async def save_contact(self, session: AsyncSession, contact: OrderContact, source_event_id: UUID) -> bool:
        """True when stored; False when the order's contact was stored before (the first one stays)."""
        result = await session.execute(
            pg_insert(order_contacts)
            .values(
                order_id=contact.order_id,
                customer_id=contact.customer_id,
                customer_name=contact.name,
                email=contact.email,
                phone=contact.phone,
                locale=contact.locale,
                currency=contact.currency,
                total_minor=contact.total_minor,
                external_reference=contact.external_reference,
                lines=_lines_json(contact),
                source_event_id=source_event_id,
            )
            .on_conflict_do_nothing(index_elements=["order_id"])
            .returning(order_contacts.c.order_id)
        )
        return result.first() is not None

    async def contact(self, session: AsyncSession, order_id: UUID) -> OrderContact | None:
        row = (await session.execute(select(order_contacts).where(order_contacts.c.order_id == order_id))).first()
        if row is None:
            return None
        return OrderContact(
            order_id=row.order_id,
            customer_id=row.customer_id,
            name=row.customer_name,
            email=row.email,
            phone=row.phone,
            locale=row.locale,
            currency=row.currency,
            total_minor=row.total_minor,
            external_reference=row.external_reference,
            lines=tuple(LineSummary(ln["sku"], ln["quantity"], ln["unit_price_minor"]) for ln in row.lines),
        )

    async def claim(self, session: AsyncSession, plan: EmailPlan) -> bool:
        """Writes the send-log row before sending. False when this event, or this order's message of
        this kind, already has one: then nothing must be sent. A concurrent claim of the same key waits
        here until the other transaction ends."""
        result = await session.execute(
            pg_insert(send_log)
            .values(
                source_event_id=plan.source_event_id,
                channel=plan.channel,
                notification_id=plan.notification_id,
                order_id=plan.order_id,
                kind=plan.kind.value,
                dedupe_key=plan.dedupe_key,
                locale=plan.locale,
                recipient_masked=plan.recipient_masked,
                message_id=plan.message_id,
                status="sending",
            )
            # No conflict target: any of the primary key, the notification id or the dedupe key.
            .on_conflict_do_nothing()
            .returning(send_log.c.notification_id)
        )
        return result.first() is not None

    async def mark_sent(
        self, session: AsyncSession, plan: EmailPlan, provider_message_id: str, sent_at: datetime, locale: str
    ) -> None:
        await session.execute(
            update(send_log)
            .where(send_log.c.source_event_id == plan.source_event_id, send_log.c.channel == plan.channel)
            .values(status="sent", provider_message_id=provider_message_id[:300], sent_at=sent_at, locale=locale)
        )

    async def mark_rejected(self, session: AsyncSession, plan: EmailPlan, error: str) -> None:
        await session.execute(
            update(send_log)
            .where(send_log.c.source_event_id == plan.source_event_id, send_log.c.channel == plan.channel)
            .values(status="rejected", error=error)
        )

    async def history(self, session: AsyncSession, order_id: UUID) -> list[SentNotification]:
        result = await session.execute(
            select(
                send_log.c.notification_id,
                send_log.c.order_id,
                send_log.c.source_event_id,
                send_log.c.kind,
                send_log.c.channel,
                send_log.c.status,
                send_log.c.recipient_masked,
                send_log.c.message_id,
                send_log.c.provider_message_id,
                send_log.c.error,
                send_log.c.created_at,
                send_log.c.sent_at,
            )
            .where(send_log.c.order_id == order_id)
            .order_by(send_log.c.created_at, send_log.c.kind)
        )
        return [SentNotification(**row._asdict()) for row in result.all()]
