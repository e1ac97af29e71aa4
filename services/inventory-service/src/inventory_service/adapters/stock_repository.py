"""Stock, reservations, policies and purchase orders in PostgreSQL. Every method runs inside the caller's
transaction."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.tables import (
    goods_receipts,
    purchase_orders,
    replenishment_policies,
    reservation_lines,
    reservations,
    restocks,
    sku_costs,
    stock_levels,
    warehouses,
)
from inventory_service.domain.allocation import LineRequest, Pick
from inventory_service.domain.replenishment import ReplenishmentPolicy


@dataclass(frozen=True)
class Reservation:
    order_id: UUID
    reservation_id: UUID
    status: str
    picks: tuple[Pick, ...]
    requested: tuple[LineRequest, ...] = ()
    shipping_address: dict[str, Any] | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class StockLevel:
    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    safety_stock: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class Warehouse:
    warehouse_id: str
    name: str
    location: str
    country: str | None
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class PurchaseOrder:
    purchase_order_id: UUID
    sku: str
    warehouse_id: str
    quantity: int
    status: str
    expected_by: date
    received_quantity: int | None
    created_at: datetime
    received_at: datetime | None


_LEVEL_COLUMNS = (
    stock_levels.c.sku,
    stock_levels.c.warehouse_id,
    stock_levels.c.on_hand,
    stock_levels.c.reserved,
    stock_levels.c.safety_stock,
)


class StockRepository:
    # ------------------------------------------------------------------ stock levels

    async def lock_levels(self, session: AsyncSession, skus: Iterable[str]) -> list[StockLevel]:
        """Locks the rows of these skus in one fixed order, so concurrent reservations cannot deadlock."""
        result = await session.execute(
            select(*_LEVEL_COLUMNS)
            .where(stock_levels.c.sku.in_(sorted(set(skus))))
            .order_by(stock_levels.c.sku, stock_levels.c.warehouse_id)
            .with_for_update()
        )
        return [StockLevel(*row) for row in result.all()]

    async def lock_level(self, session: AsyncSession, sku: str, warehouse_id: str) -> StockLevel | None:
        result = await session.execute(
            select(*_LEVEL_COLUMNS)
            .where(stock_levels.c.sku == sku, stock_levels.c.warehouse_id == warehouse_id)
            .with_for_update()
        )
        row = result.first()
        return StockLevel(*row) if row else None

    async def ensure_level(self, session: AsyncSession, sku: str, warehouse_id: str) -> None:
        """A row with nothing on hand, for a sku arriving in a warehouse for the first time."""
        await session.execute(
            pg_insert(stock_levels)
            .values(sku=sku, warehouse_id=warehouse_id, on_hand=0, reserved=0)
            .on_conflict_do_nothing(constraint="pk_stock_levels")
        )

    async def levels(self, session: AsyncSession, sku: str) -> list[StockLevel]:
        result = await session.execute(
            select(*_LEVEL_COLUMNS).where(stock_levels.c.sku == sku).order_by(stock_levels.c.warehouse_id)
        )
        return [StockLevel(*row) for row in result.all()]

    async def warehouse_levels(self, session: AsyncSession, warehouse_id: str) -> list[StockLevel]:
        result = await session.execute(
            select(*_LEVEL_COLUMNS).where(stock_levels.c.warehouse_id == warehouse_id).order_by(stock_levels.c.sku)
        )
        return [StockLevel(*row) for row in result.all()]

    async def all_levels(self, session: AsyncSession) -> list[StockLevel]:
        result = await session.execute(
            select(*_LEVEL_COLUMNS).order_by(stock_levels.c.warehouse_id, stock_levels.c.sku)
        )
        return [StockLevel(*row) for row in result.all()]

    async def seed_level(self, session: AsyncSession, sku: str, warehouse_id: str, on_hand: int) -> bool:
        """Sets on hand for a sku only when it has no row yet: seeding never overwrites live stock. False
        when the row existed."""
        result = await session.execute(
            pg_insert(stock_levels)
            .values(sku=sku, warehouse_id=warehouse_id, on_hand=on_hand, reserved=0)
            .on_conflict_do_nothing(constraint="pk_stock_levels")
            .returning(stock_levels.c.sku)
        )
        return result.first() is not None

    # ------------------------------------------------------------------ warehouses and costs

    async def upsert_warehouse(
        self,
        session: AsyncSession,
        warehouse: Warehouse,
        *,
        overwrite: bool = True,
    ) -> None:
        values = {
            "warehouse_id": warehouse.warehouse_id,
            "name": warehouse.name,
            "location": warehouse.location,
            "country": warehouse.country,
            "latitude": warehouse.latitude,
            "longitude": warehouse.longitude,
        }
        statement = pg_insert(warehouses).values(**values)
        if overwrite:
            statement = statement.on_conflict_do_update(index_elements=["warehouse_id"], set_=values)
        else:
            statement = statement.on_conflict_do_nothing(index_elements=["warehouse_id"])
        await session.execute(statement)

    async def warehouses(self, session: AsyncSession) -> list[Warehouse]:
        result = await session.execute(
            select(
                warehouses.c.warehouse_id,
                warehouses.c.name,
                warehouses.c.location,
                warehouses.c.country,
                warehouses.c.latitude,
                warehouses.c.longitude,
            ).order_by(warehouses.c.warehouse_id)
        )
        return [Warehouse(*row) for row in result.all()]

    async def set_unit_cost(self, session: AsyncSession, sku: str, unit_cost_minor: int, currency: str) -> None:
        values = {"sku": sku, "unit_cost_minor": unit_cost_minor, "currency": currency}
        await session.execute(
            pg_insert(sku_costs).values(**values).on_conflict_do_update(index_elements=["sku"], set_=values)
        )

    async def unit_costs(self, session: AsyncSession) -> dict[str, tuple[int, str]]:
        result = await session.execute(select(sku_costs.c.sku, sku_costs.c.unit_cost_minor, sku_costs.c.currency))
        return {sku: (cost, currency) for sku, cost, currency in result.all()}

    # ------------------------------------------------------------------ reservations

    async def reservation(self, session: AsyncSession, order_id: UUID, *, lock: bool = False) -> Reservation | None:
        query = select(
            reservations.c.reservation_id,
            reservations.c.status,
            reservations.c.requested,
            reservations.c.shipping_address,
            reservations.c.created_at,
            reservations.c.expires_at,
        ).where(reservations.c.order_id == order_id)
        row = (await session.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            return None
        lines = await session.execute(
            select(reservation_lines.c.sku, reservation_lines.c.warehouse_id, reservation_lines.c.quantity)
            .where(reservation_lines.c.reservation_id == row.reservation_id)
            .order_by(reservation_lines.c.sku, reservation_lines.c.warehouse_id)
        )
        return Reservation(
            order_id,
            row.reservation_id,
            row.status,
            tuple(Pick(*line) for line in lines.all()),
            tuple(LineRequest(r["sku"], r["quantity"]) for r in row.requested),
            row.shipping_address,
            row.created_at,
            row.expires_at,
        )

    async def add_lines(self, session: AsyncSession, reservation_id: UUID, picks: Sequence[Pick]) -> None:
        if picks:
            await session.execute(
                insert(reservation_lines),
                [
                    {
                        "reservation_id": reservation_id,
                        "sku": p.sku,
                        "warehouse_id": p.warehouse_id,
                        "quantity": p.quantity,
                    }
                    for p in picks
                ],
            )

    async def unshipped_picks(
        self, session: AsyncSession, reservation_id: UUID, warehouse_id: str | None = None
    ) -> list[Pick]:
        query = select(reservation_lines.c.sku, reservation_lines.c.warehouse_id, reservation_lines.c.quantity).where(
            reservation_lines.c.reservation_id == reservation_id, reservation_lines.c.shipped.is_(False)
        )
        if warehouse_id is not None:
            query = query.where(reservation_lines.c.warehouse_id == warehouse_id)
        query = query.order_by(reservation_lines.c.sku, reservation_lines.c.warehouse_id)
        return [Pick(*row) for row in (await session.execute(query)).all()]

    async def set_status(
        self, session: AsyncSession, order_id: UUID, status: str, *, expires_at: datetime | None = None
    ) -> None:
        """Moves a reservation; `expires_at` is the new expiry (None: it holds nothing unpaid)."""
        await session.execute(
            update(reservations)
            .where(reservations.c.order_id == order_id)
            .values(status=status, expires_at=expires_at, updated_at=func.now())
        )

    async def backorders(self, session: AsyncSession, skus: Iterable[str] | None = None) -> list[Reservation]:
        """Waiting backorders (those that ask for one of `skus`, or all), oldest first."""
        query = select(reservations.c.order_id).where(reservations.c.status == "backordered")
        wanted = sorted(set(skus)) if skus is not None else None
        if wanted is not None:
            if not wanted:
                return []
            query = query.where(or_(*(reservations.c.requested.contains([{"sku": sku}]) for sku in wanted)))
        order_ids = (await session.scalars(query.order_by(reservations.c.created_at, reservations.c.order_id))).all()
        found = [await self.reservation(session, order_id) for order_id in order_ids]
        return [r for r in found if r is not None]

    # ------------------------------------------------------------------ replenishment

    async def put_policy(self, session: AsyncSession, policy: ReplenishmentPolicy) -> None:
        values = {
            "sku": policy.sku,
            "warehouse_id": policy.warehouse_id,
            "reorder_point": policy.reorder_point,
            "reorder_quantity": policy.reorder_quantity,
            "order_up_to": policy.order_up_to,
            "lead_time_days": policy.lead_time_days,
            "updated_at": func.now(),
        }
        await session.execute(
            pg_insert(replenishment_policies)
            .values(**values)
            .on_conflict_do_update(constraint="pk_replenishment_policies", set_=values)
        )

    async def delete_policy(self, session: AsyncSession, sku: str, warehouse_id: str) -> bool:
        result = await session.execute(
            delete(replenishment_policies)
            .where(replenishment_policies.c.sku == sku, replenishment_policies.c.warehouse_id == warehouse_id)
            .returning(replenishment_policies.c.sku)
        )
        return result.first() is not None

    async def policies(
        self, session: AsyncSession, sku: str | None = None, warehouse_id: str | None = None
    ) -> list[ReplenishmentPolicy]:
        query = select(
            replenishment_policies.c.sku,
            replenishment_policies.c.warehouse_id,
            replenishment_policies.c.reorder_point,
            replenishment_policies.c.reorder_quantity,
            replenishment_policies.c.order_up_to,
            replenishment_policies.c.lead_time_days,
        ).order_by(replenishment_policies.c.sku, replenishment_policies.c.warehouse_id)
        if sku is not None:
            query = query.where(replenishment_policies.c.sku == sku)
        if warehouse_id is not None:
            query = query.where(replenishment_policies.c.warehouse_id == warehouse_id)
        return [ReplenishmentPolicy(*row) for row in (await session.execute(query)).all()]

    async def open_purchase_order(
        self, session: AsyncSession, purchase_order_id: UUID, policy: ReplenishmentPolicy, quantity: int, today: date
    ) -> bool:
        """False when one is open already for the sku and warehouse (the partial unique index decides)."""
        result = await session.execute(
            pg_insert(purchase_orders)
            .values(
                purchase_order_id=purchase_order_id,
                sku=policy.sku,
                warehouse_id=policy.warehouse_id,
                quantity=quantity,
                status="open",
                expected_by=policy.expected_by(today),
            )
            .on_conflict_do_nothing(index_elements=["sku", "warehouse_id"], index_where=text("status = 'open'"))
            .returning(purchase_orders.c.purchase_order_id)
        )
        return result.first() is not None

    async def purchase_order(
        self, session: AsyncSession, purchase_order_id: UUID, *, lock: bool = False
    ) -> PurchaseOrder | None:
        query = select(*_PO_COLUMNS).where(purchase_orders.c.purchase_order_id == purchase_order_id)
        row = (await session.execute(query.with_for_update() if lock else query)).first()
        return PurchaseOrder(*row) if row else None

    async def purchase_orders(self, session: AsyncSession, status: str | None = None) -> list[PurchaseOrder]:
        query = select(*_PO_COLUMNS).order_by(purchase_orders.c.created_at, purchase_orders.c.purchase_order_id)
        if status is not None:
            query = query.where(purchase_orders.c.status == status)
        return [PurchaseOrder(*row) for row in (await session.execute(query)).all()]

    async def close_purchase_order(self, session: AsyncSession, purchase_order_id: UUID, received: int) -> None:
        await session.execute(
            update(purchase_orders)
            .where(purchase_orders.c.purchase_order_id == purchase_order_id)
            .values(status="received", received_quantity=received, received_at=func.now())
        )

    # ------------------------------------------------------------------ receipts and returns

    async def claim_receipt(
        self, session: AsyncSession, sku: str, warehouse_id: str, reference: str, quantity: int
    ) -> bool:
        """False when this reference was received before for the sku and warehouse."""
        result = await session.execute(
            pg_insert(goods_receipts)
            .values(sku=sku, warehouse_id=warehouse_id, reference=reference, quantity=quantity)
            .on_conflict_do_nothing(constraint="pk_goods_receipts")
            .returning(goods_receipts.c.sku)
        )
        return result.first() is not None

    async def claim_restock(
        self, session: AsyncSession, return_id: UUID, order_id: UUID, lines: list[dict[str, Any]]
    ) -> bool:
        """False when this return was restocked before."""
        result = await session.execute(
            pg_insert(restocks)
            .values(return_id=return_id, order_id=order_id, lines=lines)
            .on_conflict_do_nothing(index_elements=["return_id"])
            .returning(restocks.c.return_id)
        )
        return result.first() is not None


_PO_COLUMNS = (
    purchase_orders.c.purchase_order_id,
    purchase_orders.c.sku,
    purchase_orders.c.warehouse_id,
    purchase_orders.c.quantity,
    purchase_orders.c.status,
    purchase_orders.c.expected_by,
    purchase_orders.c.received_quantity,
    purchase_orders.c.created_at,
    purchase_orders.c.received_at,
)
