"""order-service's own tables, beside the runtime's event store, outbox and inbox."""

from sqlalchemy import Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, String, Table, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# One order per (channel, external reference): a resubmitted order finds the first one.
order_references = Table(
    "order_references",
    metadata,
    Column("channel", String(20), nullable=False),
    Column("external_reference", String(100), nullable=False),
    Column("order_id", Uuid, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("channel", "external_reference", name="pk_order_references"),
)

# Payment tokens stay out of the public events; kept only until the saga no longer needs them.
payment_tokens = Table(
    "payment_tokens",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("token", String(128), nullable=False),
)

# The saga's pending step per order: which reply it awaits, the command to re-send, the deadline.
saga_steps = Table(
    "saga_steps",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("awaiting", String(100), nullable=False),
    Column("command_type", String(100), nullable=False),
    Column("command", JSONB, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("deadline_at", DateTime(timezone=True), nullable=False, index=True),
    Column("state", String(20), nullable=False, server_default="waiting"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
