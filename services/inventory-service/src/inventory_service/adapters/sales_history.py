"""The sales history per sku and day: recorded once per order, read as a daily series for forecasting."""

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Final
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.planning_tables import daily_demand, demand_orders
from oms_runtime.driver import fetch_in_transaction

# The orders are counted and their units added in one statement: units are added only for the orders
# whose row was new (the claim's RETURNING rows), summed per sku and day so that no row is changed twice,
# and in sku order, so that concurrent writers lock the rows in one order and cannot deadlock. Straight on
# asyncpg (`fetch_in_transaction`), prepared once per connection; one text serves one order or a batch.
# $1 order ids, $2 days, then one row per line: $3 order ids, $4 skus, $5 units.
_RECORD_ORDERS: Final = """
WITH counted AS (
    INSERT INTO demand_orders (order_id, day)
    SELECT o.order_id, o.day FROM unnest($1::uuid[], $2::date[]) AS o(order_id, day)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id, day
),
added AS (
    INSERT INTO daily_demand (sku, day, units)
    SELECT l.sku, c.day, sum(l.units)
    FROM unnest($3::uuid[], $4::text[], $5::int[]) AS l(order_id, sku, units)
    JOIN counted AS c ON c.order_id = l.order_id
    GROUP BY l.sku, c.day
    ORDER BY l.sku, c.day
    ON CONFLICT ON CONSTRAINT pk_daily_demand DO UPDATE SET units = daily_demand.units + excluded.units
)
SELECT order_id FROM counted
"""

OrderDemand = tuple[UUID, date, Iterable[tuple[str, int]]]
"""An order's id, the day it was placed and its lines (sku, quantity)."""


class SalesHistory:
    async def record_order(
        self, session: AsyncSession, order_id: UUID, day: date, lines: Iterable[tuple[str, int]]
    ) -> bool:
        """Adds an order's units to its day; True the first time, False (and no change) for an order already
        counted. Lines of the same sku are summed."""
        return bool(await self.record_orders(session, [(order_id, day, lines)]))

    async def record_orders(self, session: AsyncSession, orders: Sequence[OrderDemand]) -> set[UUID]:
        """`record_order` for many orders in one statement; returns the ids of those counted now (an order
        given twice counts once, on its first day)."""
        order_ids: list[UUID] = []
        days: list[date] = []
        line_orders: list[UUID] = []
        skus: list[str] = []
        units: list[int] = []
        for order_id, day, lines in orders:
            if order_id in order_ids:
                continue
            order_ids.append(order_id)
            days.append(day)
            for sku, quantity in lines:
                line_orders.append(order_id)
                skus.append(sku)
                units.append(quantity)
        if not order_ids:
            return set()
        rows = await fetch_in_transaction(session, _RECORD_ORDERS, order_ids, days, line_orders, skus, units)
        return {row[0] for row in rows}

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
