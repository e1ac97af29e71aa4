"""Demo warehouses and stock, loaded at start when they are missing (never overwriting live stock)."""

from inventory_service.adapters.stock_repository import StockRepository
from oms_runtime.db import Database

WAREHOUSES = (
    ("WH-BER", "Berlin fulfilment centre", "Berlin, DE"),
    ("WH-LON", "London fulfilment centre", "London, GB"),
)

# (sku, warehouse, on hand). SKU-LIMITED exists once, to show an out-of-stock rejection.
STOCK = (
    ("SKU-TSHIRT-RED-M", "WH-BER", 500),
    ("SKU-TSHIRT-RED-M", "WH-LON", 300),
    ("SKU-MUG-BLUE", "WH-BER", 400),
    ("SKU-MUG-BLUE", "WH-LON", 50),
    ("SKU-POSTER-A2", "WH-LON", 250),
    ("SKU-HOODIE-GREY-L", "WH-BER", 120),
    ("SKU-LIMITED", "WH-BER", 1),
)


async def seed_demo_stock(db: Database, repository: StockRepository) -> None:
    async with db.transaction() as session:
        for warehouse_id, name, location in WAREHOUSES:
            await repository.upsert_warehouse(session, warehouse_id, name, location)
        for sku, warehouse_id, on_hand in STOCK:
            await repository.seed_level(session, sku, warehouse_id, on_hand)
