"""Order contacts, customer preferences and the send log (deliveries) in PostgreSQL.

Every method runs inside the caller's transaction. The dispatcher's hot paths take one statement each:
it claims a round of due rows with their contacts and preferences in one query and writes the changes of
many rows in one statement (`apply`, arrays through `unnest`); both are constant SQL texts sent straight
to asyncpg (`oms_runtime.driver.fetch_in_transaction`), as are the consumer's statements, two per polled
batch, in `batch_writes`. The API's reads and writes, rare, stay on SQLAlchemy.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import RowMapping, bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.tables import customer_preferences, deliveries, order_contacts
from notification_service.domain.notifications import LineSummary, NotificationKind, OrderContact
from notification_service.domain.preferences import DEFAULT_TIME_ZONE, Preferences, QuietHours
from oms_runtime.driver import fetch_in_transaction


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


@dataclass(frozen=True)
class DeliveryChange:
    """Every column the dispatcher sets on a row, so that the changes of a whole round, whatever
    each row's outcome, go in one statement (`apply`)."""

    notification_id: UUID
    status: str
    status_reason: str | None
    attempts: int
    due_at: datetime
    lease_until: datetime | None
    locale: str | None
    message_id: str | None
    provider_message_id: str | None
    error: str | None
    sent_at: datetime | None

    @classmethod
    def of(cls, row: Delivery) -> "DeliveryChange":
        """The row as it is (change it with `dataclasses.replace`)."""
        return cls(**{name: getattr(row, name) for name in _CHANGED})


_CHANGED: Final = tuple(f.name for f in fields(DeliveryChange))


@dataclass(frozen=True)
class Claimed:
    """A due row, locked for the claiming transaction, with what it takes to send it: the order's
    contact (None when it was erased) and the customer's preferences."""

    delivery: Delivery
    contact: OrderContact | None
    preferences: Preferences


def _channels_json(prefs: Preferences) -> dict[str, dict[str, bool]]:
    found: dict[str, dict[str, bool]] = {}
    for (kind, channel), wanted in prefs.choices.items():
        found.setdefault(kind.value, {})[channel] = wanted
    return found


class NotificationRepository:
    # ------------------------------------------------------------ contacts

    async def contact(self, session: AsyncSession, order_id: UUID) -> OrderContact | None:
        row = (await session.execute(select(*_CONTACT_COLUMNS).where(order_contacts.c.order_id == order_id))).first()
        return contact_from_row(row._mapping) if row is not None else None

    # ------------------------------------------------------------ preferences

    async def preferences(self, session: AsyncSession, customer_id: str) -> Preferences:
        """The customer's choices; the defaults when they never made any."""
        row = (await session.execute(_PREFERENCES, {"customer_id": customer_id})).first()
        return preferences_from_row(row._mapping if row is not None else None, customer_id)

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

    async def claim_due(self, session: AsyncSession, now: datetime, limit: int) -> list[Claimed]:
        """Locks up to `limit` due rows, the longest due first, with their contacts and preferences, in
        one query. Rows another transaction holds locked are skipped (SKIP LOCKED), and so is a row
        whose order has an earlier row under a worker's lease: one order's messages go one after the
        other even across workers."""
        claimed = []
        for row in await fetch_in_transaction(session, _CLAIM_DUE, now, limit):
            delivery = Delivery(**{name: row[name] for name in _DELIVERY_FIELDS})
            contact = contact_from_row(row) if row["contact_order_id"] is not None else None
            claimed.append(Claimed(delivery, contact, preferences_from_row(row, delivery.customer_id)))
        return claimed

    async def apply(self, session: AsyncSession, changes: Sequence[DeliveryChange], now: datetime) -> None:
        """Writes the changes of many rows in one statement (one UPDATE over arrays); of two changes of
        one row, the later one."""
        if not changes:
            return
        latest = list({c.notification_id: c for c in changes}.values())
        await fetch_in_transaction(session, _APPLY, now, *([getattr(c, name) for c in latest] for name in _CHANGED))

    async def release(self, session: AsyncSession, notification_ids: Sequence[UUID], now: datetime) -> None:
        """Gives up the lease of rows claimed for a round that is not going on (the service stops):
        they are due again at once, for this worker or another."""
        if not notification_ids:
            return
        await session.execute(
            update(deliveries)
            .where(deliveries.c.notification_id.in_(notification_ids))
            .values(lease_until=case((deliveries.c.status == "sending", now), else_=None), updated_at=now)
        )

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

    async def mark_delivered(
        self, session: AsyncSession, channel: str, provider_message_id: str, now: datetime
    ) -> Delivery | None:
        """A `sent` message the provider reports delivered becomes `delivered`, in one statement; None when
        no such message is `sent` (none has that provider id, or it is settled already)."""
        rows = await fetch_in_transaction(session, _MARK_DELIVERED, channel, provider_message_id, now)
        return Delivery(**{name: rows[0][name] for name in _DELIVERY_FIELDS}) if rows else None

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


_prefs = customer_preferences
_CONTACT_COLUMNS: Final = (
    order_contacts.c.order_id.label("contact_order_id"),
    order_contacts.c.customer_id.label("contact_customer_id"),
    order_contacts.c.customer_name,
    order_contacts.c.email,
    order_contacts.c.phone,
    order_contacts.c.locale.label("contact_locale"),
    order_contacts.c.currency,
    order_contacts.c.total_minor,
    order_contacts.c.external_reference,
    order_contacts.c.lines,
)
_PREFERENCE_COLUMNS: Final = (
    _prefs.c.customer_id.label("prefs_customer_id"),
    _prefs.c.locale.label("prefs_locale"),
    _prefs.c.time_zone,
    _prefs.c.quiet_start,
    _prefs.c.quiet_end,
    _prefs.c.channels,
)
_DELIVERY_FIELDS: Final = tuple(f.name for f in fields(Delivery))

# The hot statements, built once: a statement built per call costs more Python than its round trip.
_PREFERENCES: Final = select(*_PREFERENCE_COLUMNS).where(_prefs.c.customer_id == bindparam("customer_id"))

# The dispatcher's statements, straight to asyncpg: constant texts, prepared once per connection.
_D: Final = ", ".join(f"d.{c.name}" for c in deliveries.c)
_MARK_DELIVERED: Final = f"""
UPDATE deliveries AS d SET status = 'delivered', delivered_at = $3::timestamptz, updated_at = $3::timestamptz
WHERE d.channel = $1::text AND d.provider_message_id = $2::text AND d.status = 'sent'
RETURNING {_D}
"""
# Due now: pending or deferred and under no worker's lease (a lease marks a row claimed for a round),
# or sending and its lease ended (the attempt died unrecorded); and no earlier row of its order is
# under a lease. The statuses are literals, for the planner's partial index (ix_deliveries_due).
_CLAIM_DUE: Final = f"""
SELECT {_D},
       c.order_id AS contact_order_id, c.customer_id AS contact_customer_id, c.customer_name, c.email, c.phone,
       c.locale AS contact_locale, c.currency, c.total_minor, c.external_reference, c.lines,
       p.customer_id AS prefs_customer_id, p.locale AS prefs_locale, p.time_zone, p.quiet_start, p.quiet_end,
       p.channels
FROM deliveries AS d
LEFT JOIN order_contacts AS c ON c.order_id = d.order_id
LEFT JOIN customer_preferences AS p ON p.customer_id = d.customer_id
WHERE (
        (d.status IN ('pending', 'deferred') AND d.due_at <= $1::timestamptz
         AND (d.lease_until IS NULL OR d.lease_until <= $1::timestamptz))
        OR (d.status = 'sending' AND d.lease_until <= $1::timestamptz)
    )
    AND NOT EXISTS (
        SELECT 1 FROM deliveries AS earlier
        WHERE earlier.order_id = d.order_id AND earlier.created_at < d.created_at
            AND earlier.status IN ('pending', 'deferred', 'sending') AND earlier.lease_until > $1::timestamptz
    )
ORDER BY d.due_at, d.created_at, d.channel
LIMIT $2::int
FOR UPDATE OF d SKIP LOCKED
"""

_CHANGE_TYPES: Final = {
    "notification_id": "uuid",
    "status": "text",
    "status_reason": "text",
    "attempts": "int",
    "due_at": "timestamptz",
    "lease_until": "timestamptz",
    "locale": "text",
    "message_id": "text",
    "provider_message_id": "text",
    "error": "text",
    "sent_at": "timestamptz",
}
assert tuple(_CHANGE_TYPES) == _CHANGED, "one array per DeliveryChange field, in its order"
_APPLY: Final = f"""
UPDATE deliveries AS d SET {", ".join(f"{name} = c.{name}" for name in _CHANGED[1:])}, updated_at = $1::timestamptz
FROM unnest({", ".join(f"${i}::{_CHANGE_TYPES[name]}[]" for i, name in enumerate(_CHANGED, start=2))})
    AS c({", ".join(_CHANGED)})
WHERE d.notification_id = c.notification_id
"""
"""Every changed column of many rows (`DeliveryChange`'s fields as arrays, after `updated_at`)."""


def contact_from_row(values: RowMapping) -> OrderContact:
    """An order's contact from the contact columns of a row (aliased as in `_CONTACT_COLUMNS`)."""
    return OrderContact(
        order_id=values["contact_order_id"],
        customer_id=values["contact_customer_id"],
        name=values["customer_name"],
        email=values["email"],
        phone=values["phone"],
        locale=values["contact_locale"],
        currency=values["currency"],
        total_minor=values["total_minor"],
        external_reference=values["external_reference"],
        lines=tuple(LineSummary(ln["sku"], ln["quantity"], ln["unit_price_minor"]) for ln in values["lines"]),
    )


def preferences_from_row(values: RowMapping | None, customer_id: str) -> Preferences:
    """The customer's choices from the preference columns of a row; the defaults when there are none."""
    if values is None or values["prefs_customer_id"] is None:
        return Preferences(customer_id=customer_id)
    choices: dict[tuple[NotificationKind, str], bool] = {}
    for kind, channels in values["channels"].items():
        if kind in NotificationKind.__members__.values():
            for channel, wanted in channels.items():
                choices[(NotificationKind(kind), channel)] = bool(wanted)
    start, end = values["quiet_start"], values["quiet_end"]
    return Preferences(
        customer_id=customer_id,
        locale=values["prefs_locale"],
        time_zone=values["time_zone"] or DEFAULT_TIME_ZONE,
        quiet_hours=QuietHours(start, end) if start and end else None,
        choices=choices,
    )
