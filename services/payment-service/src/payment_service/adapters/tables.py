"""payment-service's own tables (in its schema, beside the runtime's event store, outbox and inbox)."""

from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# The simulated gateway's ledger: one row per idempotency key, so the same key never charges twice,
# across restarts too. It never holds the card token, only what the gateway answered.
gateway_charges = Table(
    "gateway_charges",
    metadata,
    Column("idempotency_key", String(200), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("result", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Refunds are found by the charge's reference, which lives in the answer's JSON.
Index("ix_gateway_charges_reference", gateway_charges.c.result["reference"].astext)

# The simulated gateway's refunds: one row per idempotency key (the same key never refunds twice),
# refused ones too (the same key gets the same refusal). The approved ones of a charge never add up
# to more than the charge.
gateway_refunds = Table(
    "gateway_refunds",
    metadata,
    Column("idempotency_key", String(200), primary_key=True),
    Column("charge_reference", String(100), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("result", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
