"""payment-service's own tables (beside the runtime's event store, outbox and inbox), and the simulated
gateway's ledger, which stands for an external system and has a metadata of its own."""

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

# The reconciliation read model: one row per money movement (a capture or a refund), written in the
# same transaction as the payment event it comes from, keyed by that event's id (so a replay adds nothing).
payment_movements = Table(
    "payment_movements",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("order_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # captured | refunded
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("channel", String(40), nullable=False),
    Column("business_day", Date, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)
Index("ix_payment_movements_day", payment_movements.c.business_day, payment_movements.c.channel)

gateway_metadata = MetaData()

# The simulated gateway's books: one row per idempotency key and operation (authorise, capture, void,
# refund), committed in the gateway's own transactions, never in the service's: like a real gateway,
# what it did survives a crash of the service between the call and the service's commit. The same key
# gives the same answer and never a second movement of money. It never holds the card token: `flags`
# keeps only the test behaviour the token asked for (flaky, slow, capture fails).
simulated_gateway_operations = Table(
    "simgw_operations",
    gateway_metadata,
    Column("idempotency_key", String(200), primary_key=True),
    Column("operation", String(10), nullable=False),
    Column("reference", String(100), nullable=False, unique=True),
    Column("target_reference", String(100), nullable=True, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("flags", JSONB, nullable=False),
    Column("result", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
