"""Reads and reports of inventory-service's HTTP API (from PostgreSQL; availability comes from Redis)."""

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

from inventory_service.adapters.stock_repository import (
    PurchaseOrder,
    Reservation,
    StockLevel,
    StockRepository,
    Warehouse,
)
from inventory_service.domain.replenishment import ReplenishmentPolicy
from oms_runtime.db import Database


@dataclass(frozen=True)
class WarehouseTotals:
    warehouse_id: str
    skus: int
    on_hand: int
    reserved: int
    available: int


@dataclass(frozen=True)
class LowStock:
    level: StockLevel
    reorder_point: int | None
    reasons: tuple[str, ...]
    open_purchase_order: PurchaseOrder | None


@dataclass(frozen=True)
class StockValueLine:
    sku: str
    warehouse_id: str
    on_hand: int
    unit_cost_minor: int
    currency: str

    @property
    def value_minor(self) -> int:
        return self.on_hand * self.unit_cost_minor


@dataclass(frozen=True)
class StockValue:
    lines: list[StockValueLine]
    totals_minor: dict[str, int]
    unpriced_skus: list[str]


class InventoryQueries:
    def __init__(self, db: Database, repository: StockRepository) -> None:
        self._db = db
        self._repo = repository

    async def warehouses(self) -> list[Warehouse]:
        async with self._db.transaction() as session:
            return await self._repo.warehouses(session)

    async def sku_levels(self, sku: str) -> list[StockLevel]:
        async with self._db.transaction() as session:
            return await self._repo.levels(session, sku)

    async def warehouse_levels(self, warehouse_id: str) -> list[StockLevel] | None:
        async with self._db.transaction() as session:
            if warehouse_id not in {w.warehouse_id for w in await self._repo.warehouses(session)}:
                return None
            return await self._repo.warehouse_levels(session, warehouse_id)

    async def policies(self, sku: str | None = None) -> list[ReplenishmentPolicy]:
        async with self._db.transaction() as session:
            return await self._repo.policies(session, sku)

    async def purchase_orders(self, status: str | None = None) -> list[PurchaseOrder]:
        async with self._db.transaction() as session:
            return await self._repo.purchase_orders(session, status)

    async def purchase_order(self, purchase_order_id: UUID) -> PurchaseOrder | None:
        async with self._db.transaction() as session:
            return await self._repo.purchase_order(session, purchase_order_id)

    async def reservation(self, order_id: UUID) -> Reservation | None:
        async with self._db.transaction() as session:
            return await self._repo.reservation(session, order_id)

    async def backorders(self) -> list[Reservation]:
        async with self._db.transaction() as session:
            return await self._repo.backorders(session)

    # ------------------------------------------------------------------ reports

    async def stock_by_warehouse(self) -> list[WarehouseTotals]:
        async with self._db.transaction() as session:
            levels = await self._repo.all_levels(session)
            known = [w.warehouse_id for w in await self._repo.warehouses(session)]
        by_warehouse: dict[str, list[StockLevel]] = defaultdict(list)
        for level in levels:
            by_warehouse[level.warehouse_id].append(level)
        return [
            WarehouseTotals(
                warehouse_id=wh,
                skus=sum(1 for lvl in by_warehouse[wh] if lvl.on_hand > 0),
                on_hand=sum(lvl.on_hand for lvl in by_warehouse[wh]),
                reserved=sum(lvl.reserved for lvl in by_warehouse[wh]),
                available=sum(lvl.available for lvl in by_warehouse[wh]),
            )
            for wh in sorted(set(known) | set(by_warehouse))
        ]

    async def low_stock(self) -> list[LowStock]:
        """Every sku + warehouse whose available stock is at or below its reorder point or its safety stock."""
        async with self._db.transaction() as session:
            levels = await self._repo.all_levels(session)
            policies = {(p.sku, p.warehouse_id): p for p in await self._repo.policies(session)}
            open_orders = {(o.sku, o.warehouse_id): o for o in await self._repo.purchase_orders(session, "open")}
        found = []
        for level in levels:
            policy = policies.get((level.sku, level.warehouse_id))
            reasons = []
            if policy is not None and level.available <= policy.reorder_point:
                reasons.append("at_or_below_reorder_point")
            if level.safety_stock > 0 and level.available <= level.safety_stock:
                reasons.append("at_or_below_safety_stock")
            if reasons:
                found.append(
                    LowStock(
                        level,
                        policy.reorder_point if policy else None,
                        tuple(reasons),
                        open_orders.get((level.sku, level.warehouse_id)),
                    )
                )
        return found

    async def stock_value(self) -> StockValue:
        async with self._db.transaction() as session:
            levels = await self._repo.all_levels(session)
            costs = await self._repo.unit_costs(session)
        lines = []
        totals: dict[str, int] = defaultdict(int)
        unpriced = set()
        for level in levels:
            if level.on_hand == 0:
                continue
            if level.sku not in costs:
                unpriced.add(level.sku)
                continue
            cost, currency = costs[level.sku]
            line = StockValueLine(level.sku, level.warehouse_id, level.on_hand, cost, currency)
            lines.append(line)
            totals[currency] += line.value_minor
        return StockValue(lines, dict(totals), sorted(unpriced))
