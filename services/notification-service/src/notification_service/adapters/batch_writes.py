"""The consumer's statements: a whole polled batch in two, whatever its size.

1. `store_and_read_contacts`: the contacts of the batch's `OrderPlaced` events stored (the first one of
   an order stays) and the contacts of every order the batch names read back with their customers'
   preferences, in one statement: a data-modifying CTE over arrays (`unnest`), so the statement's text
   is the same for every batch size (prepared once by the driver, compiled once by SQLAlchemy).
2. `insert_deliveries`: the batch's send-log rows, in the events' order, in one INSERT over arrays.

They take SQLAlchemy's sync `Session`: the consumer runs them from the batch's `before_commit` (see
`notification_service.consumed`), which is a sync hook, inside the async session's greenlet (so the
statements still go through asyncpg without blocking the loop).
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Boolean, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from notification_service.adapters.repository import NewDelivery, contact_from_row, preferences_from_row
from notification_service.domain.notifications import OrderContact
from notification_service.domain.preferences import Preferences


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
_STORE_AND_READ: Final = text(
    f"""
WITH stored AS (
    INSERT INTO order_contacts ({_CONTACT_COLUMNS}, source_event_id)
    SELECT order_id, customer_id, customer_name, email, phone, locale, currency, total_minor,
           external_reference, CAST(lines AS jsonb), source_event_id
    FROM unnest(
        CAST(:order_ids AS uuid[]), CAST(:customer_ids AS text[]), CAST(:names AS text[]),
        CAST(:emails AS text[]), CAST(:phones AS text[]), CAST(:locales AS text[]),
        CAST(:currencies AS text[]), CAST(:totals AS bigint[]), CAST(:references AS text[]),
        CAST(:lines AS text[]), CAST(:source_event_ids AS uuid[])
    ) AS input({_CONTACT_COLUMNS}, source_event_id)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING {_CONTACT_COLUMNS}
),
found AS (
    SELECT true AS stored, {_CONTACT_COLUMNS} FROM stored
    UNION ALL
    SELECT false, {_CONTACT_COLUMNS} FROM order_contacts WHERE order_id = ANY(CAST(:wanted AS uuid[]))
)
SELECT found.stored,
       found.order_id AS contact_order_id, found.customer_id AS contact_customer_id, found.customer_name,
       found.email, found.phone, found.locale AS contact_locale, found.currency, found.total_minor,
       found.external_reference, found.lines,
       p.customer_id AS prefs_customer_id, p.locale AS prefs_locale, p.time_zone, p.quiet_start,
       p.quiet_end, p.channels
FROM found LEFT JOIN customer_preferences AS p ON p.customer_id = found.customer_id
"""
).columns(stored=Boolean, lines=JSONB, channels=JSONB)

_INSERT_DELIVERIES: Final = text(
    """
INSERT INTO deliveries (notification_id, source_event_id, channel, order_id, customer_id, kind, dedupe_key,
                        event_context, status, status_reason, recipient_masked, due_at, created_at, updated_at)
SELECT notification_id, source_event_id, channel, order_id, customer_id, kind, dedupe_key,
       CAST(event_context AS jsonb), status, status_reason, recipient_masked, due_at, created_at, created_at
FROM unnest(
    CAST(:notification_ids AS uuid[]), CAST(:source_event_ids AS uuid[]), CAST(:channels AS text[]),
    CAST(:order_ids AS uuid[]), CAST(:customer_ids AS text[]), CAST(:kinds AS text[]),
    CAST(:dedupe_keys AS text[]), CAST(:event_contexts AS text[]), CAST(:statuses AS text[]),
    CAST(:status_reasons AS text[]), CAST(:recipients AS text[]), CAST(:due_ats AS timestamptz[]),
    CAST(:created_ats AS timestamptz[])
) WITH ORDINALITY AS input(notification_id, source_event_id, channel, order_id, customer_id, kind, dedupe_key,
                           event_context, status, status_reason, recipient_masked, due_at, created_at, position)
ORDER BY position
ON CONFLICT DO NOTHING
RETURNING notification_id
"""
)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def store_and_read_contacts(
    session: Session, contacts: Sequence[tuple[OrderContact, UUID]], order_ids: Iterable[UUID]
) -> ContactsRead:
    """Stores the contacts (with the id of the `OrderPlaced` each came from; an order's first contact
    stays) and reads the contact and preferences of every order in `order_ids`, in one statement."""
    rows = session.execute(
        _STORE_AND_READ,
        {
            "order_ids": [c.order_id for c, _ in contacts],
            "customer_ids": [c.customer_id for c, _ in contacts],
            "names": [c.name for c, _ in contacts],
            "emails": [c.email for c, _ in contacts],
            "phones": [c.phone for c, _ in contacts],
            "locales": [c.locale for c, _ in contacts],
            "currencies": [c.currency for c, _ in contacts],
            "totals": [c.total_minor for c, _ in contacts],
            "references": [c.external_reference for c, _ in contacts],
            "lines": [_json(lines_json(c)) for c, _ in contacts],
            "source_event_ids": [event_id for _, event_id in contacts],
            "wanted": list(set(order_ids)),
        },
    )
    stored: set[UUID] = set()
    found: dict[UUID, tuple[OrderContact, Preferences]] = {}
    for row in rows:
        values: RowMapping = row._mapping
        contact = contact_from_row(values)
        if values["stored"]:
            stored.add(contact.order_id)
        found[contact.order_id] = (contact, preferences_from_row(values, contact.customer_id))
    return ContactsRead(frozenset(stored), found)


def insert_deliveries(session: Session, new: Sequence[NewDelivery], now: datetime | None = None) -> set[UUID]:
    """Inserts the rows that do not exist yet (by id, event + channel, or order + dedupe key + channel),
    in their order (of two rows of the batch with one key, the first stays), in one statement; returns
    the ids inserted. `now` is the rows' `created_at` (default: each row's `due_at`). A concurrent insert
    of the same key waits for the other transaction."""
    if not new:
        return set()
    result = session.execute(
        _INSERT_DELIVERIES,
        {
            "notification_ids": [d.notification_id for d in new],
            "source_event_ids": [d.source_event_id for d in new],
            "channels": [d.channel for d in new],
            "order_ids": [d.order_id for d in new],
            "customer_ids": [d.customer_id for d in new],
            "kinds": [d.kind.value for d in new],
            "dedupe_keys": [d.dedupe_key for d in new],
            "event_contexts": [_json(d.event_context) for d in new],
            "statuses": [d.status for d in new],
            "status_reasons": [d.status_reason for d in new],
            "recipients": [d.recipient_masked for d in new],
            "due_ats": [d.due_at for d in new],
            "created_ats": [now or d.due_at for d in new],
        },
    )
    return set(result.scalars())


def lines_json(contact: OrderContact) -> list[dict[str, Any]]:
    return [{"sku": ln.sku, "quantity": ln.quantity, "unit_price_minor": ln.unit_price_minor} for ln in contact.lines]
