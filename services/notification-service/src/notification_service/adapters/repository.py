"""Order contacts, customer preferences and the send log (deliveries) in PostgreSQL.

Every method runs inside the caller's transaction.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.tables import customer_preferences, deliveries, order_contacts
from notification_service.domain.notifications import LineSummary, NotificationKind, OrderContact
from notification_service.domain.preferences import DEFAULT_TIME_ZONE, Preferences, QuietHours


@dataclass(frozen=True)
class NewDelivery:
    """A message to send (status `pending`), or one recorded as not sent (`suppressed`, with a reason)."""

    notification_id: UUID
    source_event_id: UUID
    channel: str
    order_id: UUID
    customer_id: str
    kind: NotificationKind
    dedupe_key: str
    event_context: dict[str, Any]
    recipient_masked: str
    status: str
    status_reason: str | None
    due_at: datetime


@dataclass(frozen=True)
class Delivery:
    """One row of the send log: the notification history (no personal data beyond the masked recipient)."""

    notification_id: UUID
    source_event_id: UUID
    channel: str
    order_id: UUID
    customer_id: str
    kind: str
    dedupe_key: str
    event_context: dict[str, Any]
    status: str
    status_reason: str | None
    locale: str | None
    recipient_masked: str
    message_id: str | None
    provider_message_id: str | None
    attempts: int
    due_at: datetime
    lease_until: datetime | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None = None
    resends: int = 0


def _lines_json(contact: OrderContact) -> list[dict[str, Any]]:
    return [{"sku": ln.sku, "quantity": ln.quantity, "unit_price_minor": ln.unit_price_minor} for ln in contact.lines]


def _channels_json(prefs: Preferences) -> dict[str, dict[str, bool]]:
    found: dict[str, dict[str, bool]] = {}
    for (kind, channel), wanted in prefs.choices.items():
        found.setdefault(kind.value, {})[channel] = wanted
    return found


class NotificationRepository:
    # ------------------------------------------------------------ contacts

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

    # ------------------------------------------------------------ preferences

    async def preferences(self, session: AsyncSession, customer_id: str) -> Preferences:
        """The customer's choices; the defaults when they never made any."""
        row = (
            await session.execute(select(customer_preferences).where(customer_preferences.c.customer_id == customer_id))
        ).first()
        if row is None:
            return Preferences(customer_id=customer_id)
        choices: dict[tuple[NotificationKind, str], bool] = {}
        for kind, channels in row.channels.items():
            if kind in NotificationKind.__members__.values():
                for channel, wanted in channels.items():
                    choices[(NotificationKind(kind), channel)] = bool(wanted)
        quiet = QuietHours(row.quiet_start, row.quiet_end) if row.quiet_start and row.quiet_end else None
        return Preferences(
            customer_id=customer_id,
            locale=row.locale,
            time_zone=row.time_zone or DEFAULT_TIME_ZONE,
            quiet_hours=quiet,
            choices=choices,
        )

    async def has_preferences(self, session: AsyncSession, customer_id: str) -> bool:
        found = await session.scalar(
            select(customer_preferences.c.customer_id).where(customer_preferences.c.customer_id == customer_id)
        )
        return found is not None

    async def save_preferences(self, session: AsyncSession, prefs: Preferences, updated_by: str, now: datetime) -> None:
        values = {
            "locale": prefs.locale,
            "time_zone": prefs.time_zone,
            "quiet_start": prefs.quiet_hours.start if prefs.quiet_hours else None,
            "quiet_end": prefs.quiet_hours.end if prefs.quiet_hours else None,
            "channels": _channels_json(prefs),
            "updated_by": updated_by,
            "updated_at": now,
        }
        await session.execute(
            pg_insert(customer_preferences)
            .values(customer_id=prefs.customer_id, **values)
            .on_conflict_do_update(index_elements=["customer_id"], set_=values)
        )

    # ------------------------------------------------------------ the send log

    async def add_deliveries(self, session: AsyncSession, new: Sequence[NewDelivery], now: datetime) -> list[UUID]:
        """Inserts the rows that do not exist yet (by event + channel, or order + dedupe key + channel);
        returns the ids inserted. A concurrent insert of the same key waits for the other transaction."""
        inserted = []
        for item in new:
            result = await session.execute(
                pg_insert(deliveries)
                .values(
                    notification_id=item.notification_id,
                    source_event_id=item.source_event_id,
                    channel=item.channel,
                    order_id=item.order_id,
                    customer_id=item.customer_id,
                    kind=item.kind.value,
                    dedupe_key=item.dedupe_key,
                    event_context=item.event_context,
                    status=item.status,
                    status_reason=item.status_reason,
                    recipient_masked=item.recipient_masked,
                    due_at=item.due_at,
                    created_at=now,
                    updated_at=now,
                )
                # No conflict target: any of the primary key, the event + channel or the dedupe key.
                .on_conflict_do_nothing()
                .returning(deliveries.c.notification_id)
            )
            if result.first() is not None:
                inserted.append(item.notification_id)
        return inserted

    @staticmethod
    def _due(now: datetime) -> Any:
        return or_(
            (deliveries.c.status.in_(("pending", "deferred"))) & (deliveries.c.due_at <= now),
            (deliveries.c.status == "sending") & (deliveries.c.lease_until <= now),
        )

    async def due(self, session: AsyncSession, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        """(notification id, order id) of the rows due now, the longest due first."""
        rows = await session.execute(
            select(deliveries.c.notification_id, deliveries.c.order_id)
            .where(self._due(now))
            .order_by(deliveries.c.due_at, deliveries.c.created_at)
            .limit(limit)
        )
        return [(row.notification_id, row.order_id) for row in rows]

    async def lock_due(self, session: AsyncSession, notification_id: UUID, now: datetime) -> Delivery | None:
        """The row, locked for this transaction, if it is still due and no other worker holds it."""
        row = (
            await session.execute(
                select(deliveries)
                .where(deliveries.c.notification_id == notification_id, self._due(now))
                .with_for_update(skip_locked=True)
            )
        ).first()
        return Delivery(**row._asdict()) if row is not None else None

    async def update(self, session: AsyncSession, notification_id: UUID, now: datetime, **values: Any) -> None:
        await session.execute(
            update(deliveries).where(deliveries.c.notification_id == notification_id).values(updated_at=now, **values)
        )

    async def get(self, session: AsyncSession, notification_id: UUID, *, for_update: bool = False) -> Delivery | None:
        query = select(deliveries).where(deliveries.c.notification_id == notification_id)
        row = (await session.execute(query.with_for_update() if for_update else query)).first()
        return Delivery(**row._asdict()) if row is not None else None

    async def by_provider_id(self, session: AsyncSession, channel: str, provider_message_id: str) -> Delivery | None:
        row = (
            await session.execute(
                select(deliveries)
                .where(deliveries.c.channel == channel, deliveries.c.provider_message_id == provider_message_id)
                .with_for_update()
            )
        ).first()
        return Delivery(**row._asdict()) if row is not None else None

    async def history_for_order(self, session: AsyncSession, order_id: UUID) -> list[Delivery]:
        result = await session.execute(
            select(deliveries)
            .where(deliveries.c.order_id == order_id)
            .order_by(deliveries.c.created_at, deliveries.c.kind, deliveries.c.channel)
        )
        return [Delivery(**row._asdict()) for row in result.all()]

    async def history_for_customer(self, session: AsyncSession, customer_id: str, limit: int) -> list[Delivery]:
        result = await session.execute(
            select(deliveries)
            .where(deliveries.c.customer_id == customer_id)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.kind, deliveries.c.channel)
            .limit(limit)
        )
        return [Delivery(**row._asdict()) for row in result.all()]
