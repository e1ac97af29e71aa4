"""The sales history per sku and day: recorded once per order, read as a daily series for forecasting."""

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.planning_tables import daily_demand, demand_orders


class SalesHistory:
    async def record_order(
        self, session: AsyncSession, order_id: UUID, day: date, lines: Iterable[tuple[str, int]]
    ) -> bool:
        """Adds an order's units to its day; True the first time, False (and no change) for an order already
        counted. Lines of the same sku are summed."""
        counted = await session.execute(
            insert(demand_orders)
            .values(order_id=order_id, day=day)
            .on_conflict_do_nothing(index_elements=[demand_orders.c.order_id])
            .returning(demand_orders.c.order_id)
        )
        if counted.first() is None:
            return False
        units = Counter[str]()
        for sku, quantity in lines:
            units[sku] += quantity
        if units:
            # Sorted, so that concurrent orders lock the rows in one order and cannot deadlock.
            statement = insert(daily_demand).values(
                [{"sku": sku, "day": day, "units": n} for sku, n in sorted(units.items())]
            )
            await session.execute(
                statement.on_conflict_do_update(
                    constraint="pk_daily_demand", set_={"units": daily_demand.c.units + statement.excluded.units}
                )
            )
        return True

    async def history(self, session: AsyncSession, sku: str, first_day: date, last_day: date) -> dict[date, int]:
        """Units per day of one sku between the two days (inclusive); days without sales are absent."""
        rows = await session.execute(
            select(daily_demand.c.day, daily_demand.c.units).where(
                daily_demand.c.sku == sku, daily_demand.c.day.between(first_day, last_day)
            )
        )
        return {day: units for day, units in rows}

    async def histories(
        self, session: AsyncSession, first_day: date, last_day: date, skus: Sequence[str] | None = None
    ) -> dict[str, dict[date, int]]:
        """The same for many skus at once (every sku with sales in the range, when `skus` is None)."""
        query = select(daily_demand.c.sku, daily_demand.c.day, daily_demand.c.units).where(
            daily_demand.c.day.between(first_day, last_day)
        )
        if skus is not None:
            query = query.where(daily_demand.c.sku.in_(skus))
        found: dict[str, dict[date, int]] = {}
        for sku, day, units in await session.execute(query):
            found.setdefault(sku, {})[day] = units
        return found

    async def clear(self, session: AsyncSession) -> None:
        """Forgets every recorded order and unit: the start of a rebuild."""
        await session.execute(delete(daily_demand))
        await session.execute(delete(demand_orders))
