"""notification-service's own tables (in its schema, beside the runtime's event store, outbox and inbox)."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
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

# One row per message sent (or permanently refused by the mail server), written in the transaction
# of the event that caused it. The primary key makes "one message per (event, channel)" hold; the
# unique dedupe key makes "one message per (order, kind, channel)" hold even when the same fact
# arrives again as a new event. Rows with status 'sending' never commit: the handler marks them
# 'sent' or 'rejected' before its transaction ends, and a failed send rolls the row back.
send_log = Table(
    "send_log",
    metadata,
    Column("source_event_id", Uuid, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("notification_id", Uuid, nullable=False, unique=True),
    Column("order_id", Uuid, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("dedupe_key", String(200), nullable=False),
    Column("locale", String(35), nullable=False),
    Column("recipient_masked", String(254), nullable=False),
    Column("message_id", String(300), nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_message_id", String(300)),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("source_event_id", "channel", name="pk_send_log"),
    UniqueConstraint("order_id", "channel", "dedupe_key", name="uq_send_log_order_dedupe"),
    CheckConstraint("status IN ('sending', 'sent', 'rejected')", name="ck_send_log_status"),
    Index("ix_send_log_order", "order_id", "created_at"),
)
