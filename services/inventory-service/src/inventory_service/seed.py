"""Demo warehouses and stock, loaded at start when they are missing (never overwriting live stock).

Seeded stock goes through the ledger like a goods receipt (cause `seed`), so that it has a history: the
availability view shows it and can be rebuilt from it."""

from inventory_service.adapters.stock_repository import Warehouse
from inventory_service.ledger import StockChange, StockLedger
from oms_events import MessageRegistry
from oms_runtime.db import Database
from oms_runtime.use_cases import local_context

WAREHOUSES = (
    Warehouse("WH-BER", "Berlin fulfilment centre", "Berlin, DE", "DE", 52.52, 13.40),
    Warehouse("WH-LON", "London fulfilment centre", "London, GB", "GB", 51.51, -0.13),
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


async def seed_demo_stock(db: Database, ledger: StockLedger, registry: MessageRegistry) -> None:
    async with db.transaction() as session:
        ctx = local_context(session, "inventory-service", registry)
        for warehouse in WAREHOUSES:
            await ledger.repo.upsert_warehouse(session, warehouse, overwrite=False)
        for sku, warehouse_id, on_hand in STOCK:
            if await ledger.repo.seed_level(session, sku, warehouse_id, 0):
                await ledger.change(ctx, StockChange(sku, warehouse_id, "seed", on_hand_change=on_hand))
