"""The reconciliation read model: every capture and refund as a row, and the report summed from them.

Rows are written in the same statement as the payment event they come from (`payment_store`), keyed by
the event's id, so the model never disagrees with the event store and can be rebuilt from it.
"""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.adapters.tables import payment_movements


@dataclass(frozen=True)
class ReconciliationLine:
    day: date
    channel: str
    currency: str
    captured_minor: int
    refunded_minor: int
    captures: int
    refunds: int

    @property
    def net_minor(self) -> int:
        return self.captured_minor - self.refunded_minor


async def reconciliation(
    session: AsyncSession,
    date_from: date,
    date_to: date,
    channel: str | None = None,
    currency: str | None = None,
) -> list[ReconciliationLine]:
    """Captured, refunded and net per day (UTC), channel and currency, between two days inclusive."""
    m = payment_movements.c
    captured = func.coalesce(func.sum(case((m.kind == "captured", m.amount_minor), else_=0)), 0)
    refunded = func.coalesce(func.sum(case((m.kind == "refunded", m.amount_minor), else_=0)), 0)
    query = (
        select(
            m.business_day,
            m.channel,
            m.currency,
            captured,
            refunded,
            func.count().filter(m.kind == "captured"),
            func.count().filter(m.kind == "refunded"),
        )
        .where(m.business_day >= date_from, m.business_day <= date_to)
        .group_by(m.business_day, m.channel, m.currency)
        .order_by(m.business_day, m.channel, m.currency)
    )
    if channel is not None:
        query = query.where(m.channel == channel)
    if currency is not None:
        query = query.where(m.currency == currency)
    rows = (await session.execute(query)).all()
    return [ReconciliationLine(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), int(r[6])) for r in rows]
