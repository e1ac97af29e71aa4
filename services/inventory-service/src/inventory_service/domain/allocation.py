"""Choosing warehouses for an order's lines. Pure: no I/O.

The rule, in order:
1. One warehouse for the whole order when one can serve every line (fewest parcels); among those,
   the one with the most units available for the order, then the lowest warehouse id.
2. Otherwise each line is taken from the warehouses with the most available units first, split
   across warehouses when no single one holds enough.
3. If some line cannot be served even across all warehouses, nothing is allocated and the
   shortages say which skus fall short and by how much.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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


def _merge(lines: Sequence[LineRequest]) -> dict[str, int]:
    wanted: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.quantity <= 0:
            raise ValueError(f"quantity of {line.sku} must be positive")
        wanted[line.sku] += line.quantity
    return dict(wanted)


def allocate(lines: Sequence[LineRequest], available: Availability) -> AllocationResult:
    wanted = _merge(lines)
    warehouses = sorted({wh for (_, wh) in available})

    def units(sku: str, wh: str) -> int:
        return max(0, available.get((sku, wh), 0))

    single = [wh for wh in warehouses if all(units(sku, wh) >= qty for sku, qty in wanted.items())]
    if single:
        best = min(single, key=lambda wh: (-sum(units(sku, wh) for sku in wanted), wh))
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
        for wh in sorted(warehouses, key=lambda w: (-units(sku, w), w)):
            take = min(remaining, units(sku, wh))
            if take:
                picks.append(Pick(sku, wh, take))
                remaining -= take
            if not remaining:
                break
    return AllocationResult(tuple(picks), ())
