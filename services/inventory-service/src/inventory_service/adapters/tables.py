"""inventory-service's own tables (in its schema, beside the runtime's event store, outbox and inbox).

`stock_levels` (sku, warehouse_id, on_hand, reserved) is also read by the planning code: its columns keep
their names and meaning.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from oms_runtime.db import add_upgrades

metadata = MetaData()

warehouses = Table(
    "warehouses",
    metadata,
    Column("warehouse_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("location", String(200), nullable=False),
    # Where the building is, for the "nearest warehouse" sourcing rule; a warehouse without coordinates
    # is ranked after every located one.
    Column("country", String(2)),
    Column("latitude", Float),
    Column("longitude", Float),
)

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, server_default="0"),
    Column("safety_stock", Integer, nullable=False, server_default="0"),
    # Changes made through the ledger so far: the version of the row's stream of StockLevelChanged events.
    Column("version", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sku", "warehouse_id", name="pk_stock_levels"),
    # The last line of defence against overselling, should the code ever be wrong.
    CheckConstraint("reserved >= 0 AND on_hand >= 0 AND reserved <= on_hand", name="ck_stock_never_negative"),
    CheckConstraint("safety_stock >= 0", name="ck_safety_stock_not_negative"),
)

# What one unit of a sku is worth (for the stock value report), in minor units of `currency`.
sku_costs = Table(
    "sku_costs",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("unit_cost_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    CheckConstraint("unit_cost_minor >= 0", name="ck_unit_cost_not_negative"),
)

# One reservation per order. status: reserved | failed | released | committed | expired | backordered.
# `requested` and `shipping_address` are kept for a backorder, which is allocated later, when stock arrives.
reservations = Table(
    "reservations",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("reservation_id", Uuid, nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("requested", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("shipping_address", JSONB),
    # Set while the reservation holds stock that is not paid for; NULL once paid (or when it holds nothing).
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_reservations_expiry", "expires_at", postgresql_where=text("status = 'reserved'")),
    Index("ix_reservations_backorders", "created_at", postgresql_where=text("status = 'backordered'")),
)

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("reservation_id", Uuid, ForeignKey("reservations.reservation_id"), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("shipped", Boolean, nullable=False, server_default="false"),
    PrimaryKeyConstraint("reservation_id", "sku", "warehouse_id", name="pk_reservation_lines"),
)

# Replenishment policy per sku and warehouse: a reorder point plus either a fixed reorder quantity or an
# order-up-to level (exactly one of them), and the supplier's lead time.
replenishment_policies = Table(
    "replenishment_policies",
    metadata,
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("reorder_point", Integer, nullable=False),
    Column("reorder_quantity", Integer),
    Column("order_up_to", Integer),
    Column("lead_time_days", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sku", "warehouse_id", name="pk_replenishment_policies"),
    CheckConstraint("(reorder_quantity IS NULL) <> (order_up_to IS NULL)", name="ck_policy_quantity_or_order_up_to"),
    CheckConstraint("reorder_point >= 0 AND lead_time_days >= 0", name="ck_policy_not_negative"),
    CheckConstraint("reorder_quantity IS NULL OR reorder_quantity > 0", name="ck_policy_reorder_quantity"),
    CheckConstraint("order_up_to IS NULL OR order_up_to > reorder_point", name="ck_policy_order_up_to"),
)

# status: open | received.
purchase_orders = Table(
    "purchase_orders",
    metadata,
    Column("purchase_order_id", Uuid, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("expected_by", Date, nullable=False),
    Column("received_quantity", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("received_at", DateTime(timezone=True)),
    CheckConstraint("quantity > 0", name="ck_purchase_order_quantity"),
    # Never a second open purchase order for the same sku and warehouse, however the code races.
    Index(
        "uq_purchase_orders_one_open",
        "sku",
        "warehouse_id",
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
)

# Goods receipts that carry a reference (delivery note, ASN): the same one twice is refused, so a client's
# retry never counts the goods twice.
goods_receipts = Table(
    "goods_receipts",
    metadata,
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("reference", String(100), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sku", "warehouse_id", "reference", name="pk_goods_receipts"),
)

# Returns put back on hand: one row per return, so that a repeated RestockItems changes nothing.
restocks = Table(
    "restocks",
    metadata,
    Column("return_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Columns and indexes added after the first release (run by Database.create_schema).
add_upgrades(
    metadata,
    (
        "ALTER TABLE warehouses ADD COLUMN IF NOT EXISTS country VARCHAR(2)",
        "ALTER TABLE warehouses ADD COLUMN IF NOT EXISTS latitude DOUBLE PRECISION",
        "ALTER TABLE warehouses ADD COLUMN IF NOT EXISTS longitude DOUBLE PRECISION",
        "ALTER TABLE stock_levels ADD COLUMN IF NOT EXISTS safety_stock INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE stock_levels ADD COLUMN IF NOT EXISTS version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE reservations ADD COLUMN IF NOT EXISTS requested JSONB NOT NULL DEFAULT '[]'::jsonb",
        "ALTER TABLE reservations ADD COLUMN IF NOT EXISTS shipping_address JSONB",
        "ALTER TABLE reservations ADD COLUMN IF NOT EXISTS expires_at TIMESTAMP WITH TIME ZONE",
        "CREATE INDEX IF NOT EXISTS ix_reservations_expiry ON reservations (expires_at) WHERE status = 'reserved'",
        "CREATE INDEX IF NOT EXISTS ix_reservations_backorders ON reservations (created_at) WHERE status = 'backordered'",
    ),
)
