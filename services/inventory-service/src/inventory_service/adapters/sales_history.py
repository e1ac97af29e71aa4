"""The sales history per sku and day: recorded once per order, read as a daily series for forecasting."""

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Final
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.planning_tables import daily_demand, demand_orders
from oms_runtime.driver import fetch_in_transaction

# The order is counted and its units added in one statement: the units' insert runs only when the
# order's row was new (a data-modifying CTE runs whether or not it is referenced, so it is guarded by
# EXISTS on the claim). Straight on asyncpg (`fetch_in_transaction`), prepared once per connection; the
# skus and units come as arrays, so one text serves every order. $1 order id, $2 day, $3 skus, $4 units.
_RECORD_ORDER: Final = """
WITH counted AS (
    INSERT INTO demand_orders (order_id, day) VALUES ($1::uuid, $2::date)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
),
added AS (
    INSERT INTO daily_demand (sku, day, units)
    SELECT u.sku, $2::date, u.units
    FROM unnest($3::text[], $4::int[]) AS u(sku, units)
    WHERE EXISTS (SELECT 1 FROM counted)
    ORDER BY u.sku
    ON CONFLICT ON CONSTRAINT pk_daily_demand DO UPDATE SET units = daily_demand.units + excluded.units
)
SELECT count(*) FROM counted
"""


class SalesHistory:
    async def record_order(
        self, session: AsyncSession, order_id: UUID, day: date, lines: Iterable[tuple[str, int]]
    ) -> bool:
        """Adds an order's units to its day; True the first time, False (and no change) for an order already
        counted. Lines of the same sku are summed."""
        units = Counter[str]()
        for sku, quantity in lines:
            units[sku] += quantity
        # Sorted, so that concurrent orders lock the rows in one order and cannot deadlock.
        skus = sorted(units)
        [row] = await fetch_in_transaction(session, _RECORD_ORDER, order_id, day, skus, [units[s] for s in skus])
        return bool(row[0])

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
