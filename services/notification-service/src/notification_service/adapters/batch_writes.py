"""The consumer's statements: a whole polled batch in two, whatever its size.

1. `store_and_read_contacts`: the contacts of the batch's `OrderPlaced` events stored (the first one of
   an order stays) and the contacts of every order the batch names read back with their customers'
   preferences, in one statement: a data-modifying CTE over arrays (`unnest`), so the statement's text
   is the same for every batch size.
2. `insert_deliveries`: the batch's send-log rows, in the events' order, in one INSERT over arrays.

Both are constant SQL texts sent straight to asyncpg in the batch's transaction
(`oms_runtime.driver.fetch_in_transaction`: prepared once per connection, about a quarter of
SQLAlchemy's Python per statement). The consumer runs them from the batch's `before_commit` (see
`notification_service.handlers`), a sync hook inside the async session's greenlet, through
SQLAlchemy's `await_only`.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.adapters.repository import NewDelivery, contact_from_row, preferences_from_row
from notification_service.domain.notifications import OrderContact
from notification_service.domain.preferences import Preferences
from oms_runtime.driver import fetch_in_transaction


@dataclass(frozen=True)
class ContactsRead:
    """What `store_and_read_contacts` found: the orders whose contact this batch stored, and the contact
    and preferences of every order asked for that has one."""

    stored: frozenset[UUID]
    found: dict[UUID, tuple[OrderContact, Preferences]]


_CONTACT_COLUMNS: Final = (
    "order_id, customer_id, customer_name, email, phone, locale, currency, total_minor, external_reference, lines"
)
# The main query does not see the CTE's inserted rows (one snapshot): they come from its RETURNING, the
# contacts stored before from the table, so each order appears once.
_STORE_AND_READ: Final = f"""
WITH stored AS (
    INSERT INTO order_contacts ({_CONTACT_COLUMNS}, source_event_id)
    SELECT order_id, customer_id, customer_name, email, phone, locale, currency, total_minor,
           external_reference, CAST(lines AS jsonb), source_event_id
    FROM unnest(
        $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
        $9::text[], $10::text[], $11::uuid[]
    ) AS input({_CONTACT_COLUMNS}, source_event_id)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING {_CONTACT_COLUMNS}
),
found AS (
    SELECT true AS stored, {_CONTACT_COLUMNS} FROM stored
    UNION ALL
    SELECT false, {_CONTACT_COLUMNS} FROM order_contacts WHERE order_id = ANY($12::uuid[])
)
SELECT found.stored,
       found.order_id AS contact_order_id, found.customer_id AS contact_customer_id, found.customer_name,
       found.email, found.phone, found.locale AS contact_locale, found.currency, found.total_minor,
       found.external_reference, found.lines,
       p.customer_id AS prefs_customer_id, p.locale AS prefs_locale, p.time_zone, p.quiet_start,
       p.quiet_end, p.channels
FROM found LEFT JOIN customer_preferences AS p ON p.customer_id = found.customer_id
"""

_INSERT_DELIVERIES: Final = """
INSERT INTO deliveries (notification_id, source_event_id, channel, order_id, customer_id, kind, dedupe_key,
                        event_context, status, status_reason, recipient_masked, due_at, created_at, updated_at)
SELECT notification_id, source_event_id, channel, order_id, customer_id, kind, dedupe_key,
       CAST(event_context AS jsonb), status, status_reason, recipient_masked, due_at, created_at, created_at
FROM unnest(
    $1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
    $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[]
) WITH ORDINALITY AS input(notification_id, source_event_id, channel, order_id, customer_id, kind, dedupe_key,
                           event_context, status, status_reason, recipient_masked, due_at, created_at, position)
ORDER BY position
ON CONFLICT DO NOTHING
RETURNING notification_id
"""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def store_and_read_contacts(
    session: AsyncSession, contacts: Sequence[tuple[OrderContact, UUID]], order_ids: Iterable[UUID]
) -> ContactsRead:
    """Stores the contacts (with the id of the `OrderPlaced` each came from; an order's first contact
    stays) and reads the contact and preferences of every order in `order_ids`, in one statement."""
    rows = await fetch_in_transaction(
        session,
        _STORE_AND_READ,
        [c.order_id for c, _ in contacts],
        [c.customer_id for c, _ in contacts],
        [c.name for c, _ in contacts],
        [c.email for c, _ in contacts],
        [c.phone for c, _ in contacts],
        [c.locale for c, _ in contacts],
        [c.currency for c, _ in contacts],
        [c.total_minor for c, _ in contacts],
        [c.external_reference for c, _ in contacts],
        [_json(lines_json(c)) for c, _ in contacts],
        [event_id for _, event_id in contacts],
        list(set(order_ids)),
    )
    stored: set[UUID] = set()
    found: dict[UUID, tuple[OrderContact, Preferences]] = {}
    for row in rows:
        contact = contact_from_row(row)
        if row["stored"]:
            stored.add(contact.order_id)
        found[contact.order_id] = (contact, preferences_from_row(row, contact.customer_id))
    return ContactsRead(frozenset(stored), found)


async def insert_deliveries(
    session: AsyncSession, new: Sequence[NewDelivery], now: datetime | None = None
) -> set[UUID]:
    """Inserts the rows that do not exist yet (by id, event + channel, or order + dedupe key + channel),
    in their order (of two rows of the batch with one key, the first stays), in one statement; returns
    the ids inserted. `now` is the rows' `created_at` (default: each row's `due_at`). A concurrent insert
    of the same key waits for the other transaction."""
    if not new:
        return set()
    rows = await fetch_in_transaction(
        session,
        _INSERT_DELIVERIES,
        [d.notification_id for d in new],
        [d.source_event_id for d in new],
        [d.channel for d in new],
        [d.order_id for d in new],
        [d.customer_id for d in new],
        [d.kind.value for d in new],
        [d.dedupe_key for d in new],
        [_json(d.event_context) for d in new],
        [d.status for d in new],
        [d.status_reason for d in new],
        [d.recipient_masked for d in new],
        [d.due_at for d in new],
        [now or d.due_at for d in new],
    )
    return {row[0] for row in rows}


def lines_json(contact: OrderContact) -> list[dict[str, Any]]:
    return [{"sku": ln.sku, "quantity": ln.quantity, "unit_price_minor": ln.unit_price_minor} for ln in contact.lines]
