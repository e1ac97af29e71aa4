"""Stock and reservations in PostgreSQL. Every method runs inside the caller's transaction."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.tables import reservation_lines, reservations, stock_levels, warehouses
from inventory_service.domain.allocation import Pick


@dataclass(frozen=True)
class Reservation:
    order_id: UUID
    reservation_id: UUID
    status: str
    picks: tuple[Pick, ...]


@dataclass(frozen=True)
class StockLevel:
    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockRepository:
    async def lock_levels(self, session: AsyncSession, skus: Iterable[str]) -> list[StockLevel]:
        """Locks the rows of these skus in one fixed order, so concurrent reservations cannot deadlock."""
        result = await session.execute(
            select(stock_levels.c.sku, stock_levels.c.warehouse_id, stock_levels.c.on_hand, stock_levels.c.reserved)
            .where(stock_levels.c.sku.in_(sorted(set(skus))))
            .order_by(stock_levels.c.sku, stock_levels.c.warehouse_id)
            .with_for_update()
        )
        return [StockLevel(*row) for row in result.all()]

    async def levels(self, session: AsyncSession, sku: str) -> list[StockLevel]:
        result = await session.execute(
            select(stock_levels.c.sku, stock_levels.c.warehouse_id, stock_levels.c.on_hand, stock_levels.c.reserved)
            .where(stock_levels.c.sku == sku)
            .order_by(stock_levels.c.warehouse_id)
        )
        return [StockLevel(*row) for row in result.all()]

    async def change_reserved(self, session: AsyncSession, picks: Sequence[Pick], sign: int) -> None:
        for pick in picks:
            await session.execute(
                update(stock_levels)
                .where(stock_levels.c.sku == pick.sku, stock_levels.c.warehouse_id == pick.warehouse_id)
                .values(reserved=stock_levels.c.reserved + sign * pick.quantity, updated_at=func.now())
            )

    async def take_out(self, session: AsyncSession, picks: Sequence[Pick]) -> None:
        """Shipped units leave the building: out of on hand and out of reserved."""
        for pick in picks:
            await session.execute(
                update(stock_levels)
                .where(stock_levels.c.sku == pick.sku, stock_levels.c.warehouse_id == pick.warehouse_id)
                .values(
                    on_hand=stock_levels.c.on_hand - pick.quantity,
                    reserved=stock_levels.c.reserved - pick.quantity,
                    updated_at=func.now(),
                )
            )

    async def reservation(self, session: AsyncSession, order_id: UUID, *, lock: bool = False) -> Reservation | None:
        query = select(reservations.c.reservation_id, reservations.c.status).where(reservations.c.order_id == order_id)
        row = (await session.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            return None
        lines = await session.execute(
            select(reservation_lines.c.sku, reservation_lines.c.warehouse_id, reservation_lines.c.quantity)
            .where(reservation_lines.c.reservation_id == row.reservation_id)
            .order_by(reservation_lines.c.sku, reservation_lines.c.warehouse_id)
        )
        return Reservation(order_id, row.reservation_id, row.status, tuple(Pick(*line) for line in lines.all()))

    async def add_reservation(
        self, session: AsyncSession, order_id: UUID, reservation_id: UUID, status: str, picks: Sequence[Pick]
    ) -> None:
        await session.execute(
            insert(reservations).values(order_id=order_id, reservation_id=reservation_id, status=status)
        )
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
        return [Pick(*row) for row in (await session.execute(query)).all()]

    async def mark_shipped(self, session: AsyncSession, reservation_id: UUID, warehouse_id: str) -> None:
        await session.execute(
            update(reservation_lines)
            .where(
                reservation_lines.c.reservation_id == reservation_id, reservation_lines.c.warehouse_id == warehouse_id
            )
            .values(shipped=True)
        )

    async def set_status(self, session: AsyncSession, order_id: UUID, status: str) -> None:
        await session.execute(
            update(reservations).where(reservations.c.order_id == order_id).values(status=status, updated_at=func.now())
        )

    async def upsert_warehouse(self, session: AsyncSession, warehouse_id: str, name: str, location: str) -> None:
        await session.execute(
            pg_insert(warehouses)
            .values(warehouse_id=warehouse_id, name=name, location=location)
            .on_conflict_do_nothing(index_elements=["warehouse_id"])
        )

    async def seed_level(self, session: AsyncSession, sku: str, warehouse_id: str, on_hand: int) -> None:
        """Sets on hand for a sku only when it has no row yet: seeding never overwrites live stock."""
        await session.execute(
            pg_insert(stock_levels)
            .values(sku=sku, warehouse_id=warehouse_id, on_hand=on_hand, reserved=0)
            .on_conflict_do_nothing(constraint="pk_stock_levels")
        )
