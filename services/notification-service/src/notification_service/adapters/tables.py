"""notification-service's own tables (in its schema, beside the runtime's event store, outbox and inbox)."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# Who to tell about an order, from its OrderPlaced: the later events do not carry the contact.
# Personal data (email, phone) lives here and nowhere else in this service.
order_contacts = Table(
    "order_contacts",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("customer_name", String(200), nullable=False),
    Column("email", String(254), nullable=False),
    Column("phone", String(32)),
    Column("locale", String(35), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("external_reference", String(100), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("source_event_id", Uuid, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A customer's choices, changed through the HTTP API. `channels` holds only explicit choices:
# {"order_shipped": {"sms": false}, ...}; what it does not name takes the defaults.
customer_preferences = Table(
    "customer_preferences",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("locale", String(35)),
    Column("time_zone", String(64), nullable=False),
    Column("quiet_start", Time),
    Column("quiet_end", Time),
    Column("channels", JSONB, nullable=False),
    Column("updated_by", String(100), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

DELIVERY_STATUSES = (
    "pending",
    "deferred",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "suppressed",
    "unconfirmed",
)

# The send log: one row per (causing event, channel), written in the transaction of the event (its inbox
# row) and then driven by the dispatcher: pending/deferred -> sending (committed before the provider is
# called) -> sent | failed | pending again (retry) | unconfirmed (an email whose attempt died unrecorded);
# an SMS provider's delivery report then turns sent into delivered or undelivered.
# The primary key and the (source_event_id, channel) key make "one message per (event, channel)" hold;
# the dedupe key makes "one message per (order, kind, channel)" hold when a fact arrives again as a new
# event. No full address or phone number here: the dispatcher reads them from order_contacts.
deliveries = Table(
    "deliveries",
    metadata,
    Column("notification_id", Uuid, primary_key=True),
    Column("source_event_id", Uuid, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("order_id", Uuid, nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("dedupe_key", String(200), nullable=False),
    Column("event_context", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", String(50)),
    Column("locale", String(35)),
    Column("recipient_masked", String(254), nullable=False),
    Column("message_id", String(300)),
    Column("provider_message_id", String(300)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # Sends an operator asked for again after a failure; part of the SMS idempotency key from the first on.
    Column("resends", Integer, nullable=False, server_default="0"),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("source_event_id", "channel", name="uq_deliveries_event_channel"),
    UniqueConstraint("order_id", "channel", "dedupe_key", name="uq_deliveries_order_dedupe"),
    CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="ck_deliveries_status"),
    Index("ix_deliveries_order", "order_id", "created_at"),
    Index("ix_deliveries_customer", "customer_id", "created_at"),
    Index("ix_deliveries_provider_id", "channel", "provider_message_id"),
    Index(
        "ix_deliveries_due",
        "due_at",
        postgresql_where=text("status IN ('pending', 'deferred', 'sending')"),
    ),
)
