"""fulfilment-service's own tables (in its schema, beside the runtime's event store, outbox and inbox)."""

from sqlalchemy import Column, Date, DateTime, Index, MetaData, String, Table, Uuid, func

metadata = MetaData()

# A projection of the Shipped events, written in the same transaction as them, for lookups by
# tracking number (carrier updates) and by order. It can be rebuilt from the event store.
shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("carrier", String(20), nullable=False),
    # Unique: the last line of defence against two parcels sharing a tracking number.
    Column("tracking_number", String(40), nullable=False, unique=True),
    Column("tracking_url", String(300), nullable=False),
    Column("estimated_delivery", Date, nullable=False),
    Column("status", String(20), nullable=False),
    Column("shipped_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_shipments_order_id", "order_id"),
)
