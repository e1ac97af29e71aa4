"""The webhook tables, in notification-service's schema (a MetaData of their own, created at start).

- `webhook_subscriptions`: who wants what. The secret is kept as given (the HMAC needs it) and never
  leaves the database through the API or a log line.
- `webhook_deliveries`: one row per (subscription, event), written in the consuming transaction with the
  CloudEvent's bytes (every attempt and every redelivery sends the same bytes). `seq` is the order the
  consumer wrote them in: a row waits while an earlier row of its subscription and subject is pending.
- `webhook_attempts`: every attempt, for the delivery log.
"""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

metadata = MetaData()

subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(String(100)), nullable=False),
    Column("secret", Text, nullable=False),
    Column("description", String(200), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("failing_since", DateTime(timezone=True)),
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_reason", Text),
    Column("created_by", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('enabled', 'disabled')", name="webhook_subscription_status"),
)

deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("subscription_id", Uuid, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("subject", String(100), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("redeliveries", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("give_up_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_http_status", Integer),
    Column("last_duration_ms", Integer),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("subscription_id", "event_id", name="webhook_delivery_once"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="webhook_delivery_status"),
    Index("webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    Index(
        "webhook_deliveries_in_line",
        "subscription_id",
        "subject",
        "seq",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("webhook_deliveries_log", "subscription_id", "seq"),
)

attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("delivery_id", Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("http_status", Integer),
    Column("error", Text),
    CheckConstraint("outcome IN ('delivered', 'failed', 'refused')", name="webhook_attempt_outcome"),
    Index("webhook_attempts_of_delivery", "delivery_id", "id"),
)
