"""Tables of demand planning, on inventory-service's own `metadata` (so the service's create_all makes them).

`daily_demand` is the sales history forecasts read: units ordered per sku per day (UTC), from the
orders' `OrderPlaced` events. `demand_orders` lists the orders already counted, so that recording an
order twice (a replay into a rebuilt table, while the live consumer also records) adds nothing.
"""

from sqlalchemy import CheckConstraint, Column, Date, Integer, PrimaryKeyConstraint, String, Table, Uuid

from inventory_service.adapters.tables import metadata

daily_demand = Table(
    "daily_demand",
    metadata,
    Column("sku", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("units", Integer, nullable=False),
    PrimaryKeyConstraint("sku", "day", name="pk_daily_demand"),
    CheckConstraint("units >= 0", name="ck_daily_demand_units"),
)

demand_orders = Table(
    "demand_orders",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("day", Date, nullable=False),
)
