"""Times inventory-service's demand forecasting: N skus with D days of daily sales history each.

    uv run --frozen python deploy/local/bench_forecast.py [--skus 1000] [--days 180] [--seed 1]

The histories are synthetic and seeded: Poisson sales around a level drawn per sku (from under one
unit a day to about a hundred), with a weekly pattern and a trend, so that busy skus, slow movers
with many zero days, and skus that only started selling recently are all in the mix, as in a real
catalogue. Only the forecast is timed (one process, one thread), not the database or HTTP.
"""

import argparse
import time
from collections import Counter
from datetime import date, timedelta

import numpy as np

from inventory_service.domain.forecasting import forecast_demand, reorder_point

END = date(2026, 6, 30)


def histories(skus: int, days: int, seed: int) -> dict[str, dict[date, int]]:
    rng = np.random.default_rng(seed)
    weekday = np.arange(days) % 7
    found = {}
    for i in range(skus):
        level = float(np.exp(rng.uniform(np.log(0.3), np.log(100))))
        weekly = 1 + rng.uniform(0, 0.5) * np.sin(2 * np.pi * (weekday + rng.integers(7)) / 7)
        trend = 1 + rng.uniform(-0.3, 0.5) * np.arange(days) / days
        units = rng.poisson(level * weekly * trend)
        # One sku in ten is new: it sold only in the last weeks.
        if rng.random() < 0.1:
            units[: days - int(rng.integers(1, 28))] = 0
        first = END - timedelta(days=days - 1)
        found[f"SKU-{i:05d}"] = {first + timedelta(days=d): int(u) for d, u in enumerate(units) if u > 0}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    sales = histories(args.skus, args.days, args.seed)
    methods: Counter[str] = Counter()
    per_sku = []
    started = time.perf_counter()
    for sku, history in sales.items():
        t0 = time.perf_counter()
        forecast = forecast_demand(sku, history, end=END, horizon_days=args.horizon)
        reorder_point(forecast, lead_time_days=7, service_level=0.95)
        per_sku.append(time.perf_counter() - t0)
        methods[forecast.method.value] += 1
    elapsed = time.perf_counter() - started

    ms = np.array(per_sku) * 1000
    print(f"{args.skus} skus x {args.days} days of history, horizon {args.horizon} days: {elapsed:.1f} s")
    print(f"throughput: {args.skus / elapsed:.1f} skus/s")
    print(f"per sku: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms")
    print("methods: " + ", ".join(f"{m} {n}" for m, n in methods.most_common()))


if __name__ == "__main__":
    main()
