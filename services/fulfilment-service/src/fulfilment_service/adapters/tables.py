"""fulfilment-service's own tables (in its schema, beside the runtime's event store, outbox and inbox)."""

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from oms_runtime.db import add_upgrades

metadata = MetaData()

# A projection of the shipment streams, written in the same transaction as their events: pick lists per
# warehouse, the shipments of an order, and lookups by tracking number (carrier updates). It can be
# rebuilt from the event store. (The walking skeleton's `shipments` table, one row per Shipped, is no
# longer written.)
shipment_views = Table(
    "shipment_views",
    metadata,
    Column("shipment_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("status", String(30), nullable=False),
    Column("delivery_method", String(20)),
    Column("lines", JSONB, nullable=False),
    Column("picked", JSONB, nullable=False, server_default="[]"),
    Column("short", JSONB, nullable=False, server_default="[]"),
    Column("parcels", JSONB, nullable=False, server_default="[]"),
    Column("carrier", String(20)),
    # Unique per carrier: the last line of defence against two parcels sharing a tracking number.
    Column("tracking_number", String(40)),
    Column("tracking_url", String(300)),
    Column("estimated_delivery", Date),
    Column("location", String(200)),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("carrier", "tracking_number", name="uq_shipment_views_tracking"),
    Index("ix_shipment_views_order_id", "order_id"),
    Index("ix_shipment_views_warehouse_status", "warehouse_id", "status", "created_at"),
)

# Returns, projected from their streams in the same transaction: what the warehouses expect back.
return_views = Table(
    "return_views",
    metadata,
    Column("return_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("status", String(30), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("sellable", JSONB, nullable=False, server_default="[]"),
    Column("unsellable", JSONB, nullable=False, server_default="[]"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_return_views_status", "status", "created_at"),
    Index("ix_return_views_order_id", "order_id"),
)

# The fulfilment performance report's projection: one row per shipment with the times and counts the report
# needs (domain/performance.py), written with the shipment's events and rebuilt with the projections above.
shipment_reports = Table(
    "shipment_reports",
    metadata,
    Column("shipment_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("delivery_method", String(20)),
    Column("carrier", String(20)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("units", Integer, nullable=False),
    Column("shipped_at", DateTime(timezone=True)),
    Column("promised_date", Date),
    Column("shipped_units", Integer, nullable=False, server_default="0"),
    Column("short_units", Integer, nullable=False, server_default="0"),
    Column("failed", Boolean, nullable=False, server_default="false"),
    Column("cancelled", Boolean, nullable=False, server_default="false"),
    Column("delivered_at", DateTime(timezone=True)),
    Column("delivery_failures", Integer, nullable=False, server_default="0"),
    Column("returned_to_sender", Boolean, nullable=False, server_default="false"),
    Column("version", Integer, nullable=False),
    Index("ix_shipment_reports_created", "created_at"),
    Index("ix_shipment_reports_warehouse_created", "warehouse_id", "created_at"),
)

# When each order was placed, from its ShipOrder's `placed_at` (written with the order's first shipment):
# the start of the report's placed-to-shipped time. Not a projection of this service's streams, so a
# rebuild keeps it (a missing row only leaves that shipment out of the placed-to-shipped percentiles).
# `channel` was filled by the consumer of OrderPlaced that recorded placings before ShipOrder carried them
# (group fulfilment-service-orders); a ShipOrder does not say, so newer rows have none.
order_placements = Table(
    "order_placements",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("channel", String(20)),
    Column("placed_at", DateTime(timezone=True), nullable=False),
)
add_upgrades(metadata, ["ALTER TABLE order_placements ALTER COLUMN channel DROP NOT NULL"])
