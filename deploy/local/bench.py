"""Places N orders as fast as the system takes them; prints throughput and placed-to-shipped latency.

    uv run python deploy/local/bench.py --orders 2000 [--concurrency 32]

Needs the infrastructure and the five services running (`make bench` starts them). Latency is
measured between the OrderPlaced and OrderShipped events of each order, both stamped by
order-service, read from the orders topic; throughput is orders shipped per second of wall time.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import datetime
from uuid import uuid4

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ORDERS_TOPIC = "oms.orders.events"
BENCH_SKU = "SKU-BENCH"


async def stock_up(database_url: str, units: int) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO inventory_service.stock_levels (sku, warehouse_id, on_hand, reserved) "
                    "VALUES (:sku, 'WH-BER', :units, 0) ON CONFLICT (sku, warehouse_id) "
                    "DO UPDATE SET on_hand = inventory_service.stock_levels.reserved + :units"
                ),
                {"sku": BENCH_SKU, "units": units},
            )
    finally:
        await engine.dispose()


def body(i: int, run_id: str) -> dict[str, object]:
    return {
        "channel": ("web", "marketplace", "phone", "store")[i % 4],
        "external_reference": f"BENCH-{run_id}-{i}",
        "customer": {"customer_id": f"bench-{i % 100}", "name": "Bench Customer", "email": "bench@example.com"},
        "lines": [{"sku": BENCH_SKU, "quantity": 1, "unit_price_minor": 1000}],
        "currency": "EUR",
        "shipping_address": {
            "name": "B",
            "line1": "1 Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "delivery_method": "standard",
        "payment_token": "tok_approve",
    }


async def watch(
    kafka: str, start: dict[TopicPartition, int], wanted: set[str], deadline: float
) -> dict[str, tuple[datetime, datetime]]:
    placed: dict[str, datetime] = {}
    done: dict[str, tuple[datetime, datetime]] = {}
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        while wanted - done.keys() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    envelope = json.loads(record.value)
                    order_id = envelope["correlation_id"]
                    at = datetime.fromisoformat(envelope["occurred_at"])
                    if envelope["type"] == "OrderPlaced":
                        placed[order_id] = at
                    elif envelope["type"] in ("OrderShipped", "OrderRejected") and order_id in placed:
                        done[order_id] = (placed[order_id], at)
    finally:
        await consumer.stop()
    return done


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(values) > 1 else values[0]


async def main(n: int, concurrency: int, url: str, timeout_s: float) -> int:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    database_url = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")
    await stock_up(database_url, n)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    [described] = await admin.describe_topics([ORDERS_TOPIC])
    await admin.close()
    partitions = [TopicPartition(ORDERS_TOPIC, p["partition"]) for p in described["partitions"]]
    probe = AIOKafkaConsumer(bootstrap_servers=kafka)
    await probe.start()
    start = await probe.end_offsets(partitions)
    await probe.stop()

    run_id = uuid4().hex[:8]
    order_ids: list[str] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            i = queue.get_nowait()
            response = await http.post("/orders", json=body(i, run_id))
            if response.status_code == 201:
                order_ids.append(response.json()["order_id"])
            else:
                failures += 1

    print(f"placing {n} orders with {concurrency} concurrent clients at {url}")
    began = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"X-API-Key": os.environ.get("OMS_API_KEY", "local-ops-key-0123456789")}
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers=headers) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    placing_s = time.monotonic() - began
    print(
        f"placed {len(order_ids)} orders in {placing_s:.1f} s ({len(order_ids) / placing_s:.0f} orders/s accepted), {failures} failed"
    )

    done = await watch(kafka, start, set(order_ids), began + timeout_s)
    finished = time.monotonic() - began
    if not done:
        print("no order finished")
        return 1
    latencies = sorted((end - begin).total_seconds() * 1000 for begin, end in done.values())
    last = max(end for _, end in done.values())
    first = min(begin for begin, _ in done.values())
    wall = (last - first).total_seconds()
    print(
        f"finished {len(done)}/{len(order_ids)} orders ({len(order_ids) - len(done)} unfinished after {finished:.0f} s)"
    )
    print(f"throughput: {len(done) / wall:.1f} orders/s end to end (first placed to last shipped: {wall:.1f} s)")
    print(
        "placed-to-shipped latency ms: "
        f"p50 {percentile(latencies, 0.50):.0f}  p95 {percentile(latencies, 0.95):.0f}  "
        f"p99 {percentile(latencies, 0.99):.0f}  max {latencies[-1]:.0f}"
    )
    return 0 if len(done) == len(order_ids) and not failures else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.orders, args.concurrency, args.url, args.timeout)))
