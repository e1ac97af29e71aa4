"""Sales figures: what an order's events mean for the sales report, and how figures add up per bucket. Pure.

An order counts on the day it was placed, in its currency:
- `orders`, `units`, `gross_minor`: orders placed and not (so far) cancelled or rejected, their units and
  their value as placed;
- `refunded_minor`: what was refunded of those orders while they went on (units not shipped, returns);
- `net_minor`: gross minus refunded;
- `cancelled_*` and `rejected_*`: orders cancelled or rejected, counted apart with their value as placed
  (a cancel's full refund is not a refund of a sale: the sale is not counted).
Grouped by sku, the same figures are per order line: `orders` holding the sku, its units and their value,
and the refunded units' value at the price the order paid (as the saga refunds them).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from oms_events import Message
from oms_events.messages import OrderCancelled, OrderRejected, OrderReturnRefunded, OrderShortShipRefunded
from oms_events.values import Allocation, OrderLine


class Outcome(StrEnum):
    OPEN = "open"
    """Placed and neither cancelled nor rejected (being fulfilled, shipped, returned in part)."""
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class GroupBy(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    CHANNEL = "channel"
    SKU = "sku"


def outcome_of(event: Message) -> Outcome | None:
    """The outcome an event settles, if it settles one."""
    if isinstance(event, OrderCancelled):
        return Outcome.CANCELLED
    if isinstance(event, OrderRejected):
        return Outcome.REJECTED
    return None


@dataclass(frozen=True)
class Refund:
    amount_minor: int
    units: dict[str, int]
    """Units refunded per sku (empty for events recorded before they named their lines)."""


def refund_of(event: Message) -> Refund | None:
    """A partial refund paid to the customer while the order went on."""
    if isinstance(event, OrderShortShipRefunded | OrderReturnRefunded):
        return Refund(event.amount_minor, units_by_sku(event.lines))
    return None


def units_by_sku(lines: Iterable[Allocation]) -> dict[str, int]:
    units: dict[str, int] = {}
    for line in lines:
        units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


@dataclass(frozen=True)
class SoldLine:
    """One sku of an order: its units, the price the saga refunds it at (the first line's), its value."""

    sku: str
    quantity: int
    unit_price_minor: int
    gross_minor: int


def sold_lines(lines: Sequence[OrderLine]) -> list[SoldLine]:
    """One entry per sku (an order may repeat a sku), in the order's line order."""
    merged: dict[str, SoldLine] = {}
    for line in lines:
        earlier = merged.get(line.sku)
        value = line.quantity * line.unit_price_minor
        if earlier is None:
            merged[line.sku] = SoldLine(line.sku, line.quantity, line.unit_price_minor, value)
        else:
            merged[line.sku] = SoldLine(
                line.sku, earlier.quantity + line.quantity, earlier.unit_price_minor, earlier.gross_minor + value
            )
    return list(merged.values())


def bucket_start(day: date, group_by: GroupBy) -> date:
    """The first day of the bucket a day falls in: itself, its ISO week's Monday, or its month's first."""
    if group_by is GroupBy.WEEK:
        return day - timedelta(days=day.weekday())
    if group_by is GroupBy.MONTH:
        return day.replace(day=1)
    return day


@dataclass(frozen=True)
class FactRow:
    """Orders (or order lines, for skus) of one day, channel or sku, currency and outcome, added up."""

    currency: str
    outcome: Outcome
    orders: int
    units: int
    gross_minor: int
    refunded_minor: int
    day: date | None = None
    channel: str | None = None
    sku: str | None = None


@dataclass
class Figures:
    orders: int = 0
    units: int = 0
    gross_minor: int = 0
    refunded_minor: int = 0
    cancelled_orders: int = 0
    cancelled_minor: int = 0
    rejected_orders: int = 0
    rejected_minor: int = 0

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunded_minor

    def add(self, row: FactRow) -> None:
        if row.outcome is Outcome.CANCELLED:
            self.cancelled_orders += row.orders
            self.cancelled_minor += row.gross_minor
        elif row.outcome is Outcome.REJECTED:
            self.rejected_orders += row.orders
            self.rejected_minor += row.gross_minor
        else:
            self.orders += row.orders
            self.units += row.units
            self.gross_minor += row.gross_minor
            self.refunded_minor += row.refunded_minor


@dataclass
class Bucket:
    key: str
    """An ISO date (the bucket's first day), a channel or a sku."""
    currency: str
    figures: Figures = field(default_factory=Figures)


def bucket_key(row: FactRow, group_by: GroupBy) -> str:
    if group_by is GroupBy.CHANNEL:
        return row.channel or ""
    if group_by is GroupBy.SKU:
        return row.sku or ""
    if row.day is None:
        raise ValueError(f"grouping by {group_by.value} needs the rows' days")
    return bucket_start(row.day, group_by).isoformat()


def buckets(rows: Iterable[FactRow], group_by: GroupBy) -> list[Bucket]:
    """The rows added up per bucket and currency, ordered by bucket, then currency."""
    found: dict[tuple[str, str], Bucket] = {}
    for row in rows:
        key = (bucket_key(row, group_by), row.currency)
        found.setdefault(key, Bucket(*key)).figures.add(row)
    return [found[key] for key in sorted(found)]


def totals(rows: Iterable[FactRow]) -> dict[str, Figures]:
    """Every row added up per currency (sorted by currency)."""
    per_currency: dict[str, Figures] = {}
    for row in rows:
        per_currency.setdefault(row.currency, Figures()).add(row)
    return dict(sorted(per_currency.items()))


def top_skus(sku_rows: Iterable[FactRow], limit: int) -> list[Bucket]:
    """The skus that sold most units (orders not cancelled or rejected), per currency; ties by net value,
    then sku. At most `limit` per currency."""
    ranked: dict[str, list[Bucket]] = {}
    for bucket in buckets(sku_rows, GroupBy.SKU):
        if bucket.figures.orders:
            ranked.setdefault(bucket.currency, []).append(bucket)
    top: list[Bucket] = []
    for currency in sorted(ranked):
        ordered = sorted(ranked[currency], key=lambda b: (-b.figures.units, -b.figures.net_minor, b.key))
        top.extend(ordered[:limit])
    return top
