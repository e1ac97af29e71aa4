"""Choosing warehouses for an order's lines (the sourcing rule). Pure: no I/O.

The rule, in order:
1. One warehouse for the whole order when one can serve every line (one parcel, one shipment). When
   several can, the preference decides:
   - `nearest` (the default): the one nearest to the shipping address (see `domain/geo.py` for how an
     address is located); warehouses without a known distance come after every located one, and
     equal distances (or an address that cannot be located) fall back to `most_stock`;
   - `most_stock`: the one with the most units available of the order's skus.
   Ties end at the lowest warehouse id, so the choice is deterministic.
2. Otherwise the order is split: each line is taken from the warehouses in the same preference order
   (nearest first, or most stock first), as many units from each as it has, until the line is served.
3. If some line cannot be served even across all warehouses, nothing is allocated and the shortages
   say which skus fall short and by how much.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class SourcingPreference(StrEnum):
    NEAREST = "nearest"
    MOST_STOCK = "most_stock"


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Pick:
    sku: str
    warehouse_id: str
    quantity: int


@dataclass(frozen=True)
class Shortfall:
    sku: str
    requested: int
    available: int


@dataclass(frozen=True)
class AllocationResult:
    picks: tuple[Pick, ...]
    shortfalls: tuple[Shortfall, ...]

    @property
    def complete(self) -> bool:
        return not self.shortfalls


Availability = Mapping[tuple[str, str], int]
"""(sku, warehouse_id) -> units available (on hand minus reserved)."""


def merge_lines(lines: Sequence[LineRequest]) -> dict[str, int]:
    wanted: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.quantity <= 0:
            raise ValueError(f"quantity of {line.sku} must be positive")
        wanted[line.sku] += line.quantity
    return dict(wanted)


def allocate(
    lines: Sequence[LineRequest],
    available: Availability,
    *,
    preference: SourcingPreference = SourcingPreference.MOST_STOCK,
    distances_km: Mapping[str, float] | None = None,
) -> AllocationResult:
    """`distances_km`: warehouse id -> distance to the shipping address, for the warehouses that have one."""
    wanted = merge_lines(lines)
    warehouses = sorted({wh for (_, wh) in available})
    distances = distances_km or {}

    def units(sku: str, wh: str) -> int:
        return max(0, available.get((sku, wh), 0))

    def rank(wh: str, skus: Sequence[str]) -> tuple[float, int, str]:
        stock = sum(units(sku, wh) for sku in skus)
        if preference is SourcingPreference.NEAREST:
            return (distances.get(wh, float("inf")), -stock, wh)
        return (0.0, -stock, wh)

    single = [wh for wh in warehouses if all(units(sku, wh) >= qty for sku, qty in wanted.items())]
    if single:
        best = min(single, key=lambda wh: rank(wh, list(wanted)))
        return AllocationResult(tuple(Pick(sku, best, qty) for sku, qty in wanted.items()), ())

    shortfalls = []
    for sku, qty in wanted.items():
        total = sum(units(sku, wh) for wh in warehouses)
        if total < qty:
            shortfalls.append(Shortfall(sku, qty, total))
    if shortfalls:
        return AllocationResult((), tuple(shortfalls))

    picks = []
    for sku, qty in wanted.items():
        remaining = qty
        for wh in sorted(warehouses, key=lambda w: rank(w, [sku])):
            take = min(remaining, units(sku, wh))
            if take:
                picks.append(Pick(sku, wh, take))
                remaining -= take
            if not remaining:
                break
    return AllocationResult(tuple(picks), ())
