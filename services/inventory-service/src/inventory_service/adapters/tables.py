"""inventory-service's own tables (in its schema, beside the runtime's event store, outbox and inbox)."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    func,
)

metadata = MetaData()

warehouses = Table(
    "warehouses",
    metadata,
    Column("warehouse_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("location", String(200), nullable=False),
)

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sku", "warehouse_id", name="pk_stock_levels"),
    # The last line of defence against overselling, should the code ever be wrong.
    CheckConstraint("reserved >= 0 AND on_hand >= 0 AND reserved <= on_hand", name="ck_stock_never_negative"),
)

# One reservation per order. status: reserved | failed | released | committed.
reservations = Table(
    "reservations",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("reservation_id", Uuid, nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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
