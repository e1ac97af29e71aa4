"""Latency percentiles and per-order figures: small, but the numbers in docs/benchmarks.md rest on them."""

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q of the values at or below it.

    Always one of the measured values (no interpolation), so a p99 of 1,000 samples is the 990th.
    """
    if not values:
        raise ValueError("no values")
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], not {q}")
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    def line(self, unit: str = "ms") -> str:
        return (
            f"p50 {self.p50:,.0f}  p95 {self.p95:,.0f}  p99 {self.p99:,.0f}  max {self.max:,.0f} {unit} "
            f"({self.count:,} samples)"
        )


def summarize(values: Sequence[float]) -> Summary:
    return Summary(
        count=len(values),
        p50=percentile(values, 0.50),
        p95=percentile(values, 0.95),
        p99=percentile(values, 0.99),
        max=max(values),
    )


def per_order(total: float, orders: int) -> float:
    if orders <= 0:
        raise ValueError("no orders to divide by")
    return total / orders


def rate(count: int, seconds: float) -> float:
    """Per second; 0 for an empty or zero-length interval rather than a division error."""
    return count / seconds if seconds > 0 and count > 0 else 0.0
