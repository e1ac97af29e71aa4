"""The load a run places and what it sees of each order: orders are placed through order-service's HTTP
API, either by C clients as fast as the system takes them (closed loop: throughput) or at a fixed rate
whatever the answers (open loop: latency below saturation), and each order is timed from its
`OrderPlaced` to its `OrderShipped`, both stamped by order-service, read from the orders topic."""

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from oms_events.topics import ORDERS_EVENTS

BENCH_SKU = "SKU-BENCH"
BENCH_WAREHOUSE = "WH-BER"
UNIT_PRICE_MINOR = 1000
FINAL = {"OrderShipped": "shipped", "OrderRejected": "rejected", "OrderCancelled": "cancelled"}


def order_body(i: int, run_id: str) -> dict[str, object]:
    return {
        "channel": ("web", "marketplace", "phone", "store")[i % 4],
        "external_reference": f"BENCH-{run_id}-{i}",
        "customer": {"customer_id": f"bench-{i % 100}", "name": "Bench Customer", "email": "bench@example.com"},
        "lines": [{"sku": BENCH_SKU, "quantity": 1, "unit_price_minor": UNIT_PRICE_MINOR}],
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


@dataclass
class Placement:
    """What the clients saw: accepted order ids, the other answers by status, and HTTP latencies (ms)."""

    accepted: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    unknown_outcomes: int = 0
    """503s answered to a POST /orders (the service could not tell in time whether the order was placed):
    each was asked again, as a real upstream system would, until it answered placed or refused."""
    http_ms: list[float] = field(default_factory=list)
    began: float = 0.0
    ended: float = 0.0
    late_starts: int = 0
    """Open loop only: orders sent more than 100 ms after their slot (the client itself fell behind)."""

    @property
    def seconds(self) -> float:
        return self.ended - self.began


class Placer:
    """Places orders round-robin over order-service's replicas."""

    def __init__(self, urls: Sequence[str], api_key: str, run_id: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"X-API-Key": api_key}
        self._clients = [httpx.AsyncClient(base_url=u, timeout=120, limits=limits, headers=headers) for u in urls]
        self._next = itertools.cycle(self._clients)
        self._run_id = run_id
        self._numbers = itertools.count()

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))

    async def _place(self, result: Placement, attempts: int = 3, unknown_attempts: int = 20) -> None:
        i = next(self._numbers)
        body = order_body(i, self._run_id)
        began = time.monotonic()
        unknown = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await next(self._next).post("/orders", json=body)
            except httpx.TransportError as exc:
                # A kept-alive connection the server closed as it was reused. Sending again is safe: the
                # same channel and external reference are the same order (200 instead of 201).
                if attempt >= attempts:
                    result.refused[type(exc).__name__] += 1
                    return
                continue
            if response.status_code != 503 or unknown >= unknown_attempts:
                break
            # 503: not known yet whether it was placed (the placement deadline passed). A client that
            # gave up here could not tell placed from lost; asking again gets the order once.
            unknown += 1
            result.unknown_outcomes += 1
            await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))
        result.http_ms.append((time.monotonic() - began) * 1000)
        if response.status_code in (200, 201):
            result.accepted.append(response.json()["order_id"])
        else:
            result.refused[str(response.status_code)] += 1

    async def closed_loop(self, orders: int, clients: int) -> Placement:
        result = Placement(began=time.monotonic())
        remaining = iter(range(orders))

        async def client() -> None:
            for _ in remaining:
                await self._place(result)

        await asyncio.gather(*(client() for _ in range(clients)))
        result.ended = time.monotonic()
        return result

    async def open_loop(self, per_second: float, seconds: float, max_in_flight: int = 1000) -> Placement:
        """One order every 1/rate s on a fixed schedule, not waiting for earlier answers (up to
        max_in_flight outstanding requests)."""
        result = Placement(began=time.monotonic())
        total = round(per_second * seconds)
        gate = asyncio.Semaphore(max_in_flight)
        tasks: list[asyncio.Task[None]] = []

        async def one() -> None:
            try:
                await self._place(result)
            finally:
                gate.release()

        for n in range(total):
            slot = result.began + n / per_second
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()
            if time.monotonic() - slot > 0.1:
                result.late_starts += 1
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        result.ended = time.monotonic()
        return result


@dataclass(frozen=True)
class Outcome:
    status: str
    placed_at: datetime
    final_at: datetime

    @property
    def latency_ms(self) -> float:
        return (self.final_at - self.placed_at).total_seconds() * 1000


class OrderWatcher:
    """Reads the orders topic from given offsets: when each order was placed and how and when it ended."""

    def __init__(self, kafka: str, start: dict[TopicPartition, int]) -> None:
        self._kafka = kafka
        self._start = {tp: o for tp, o in start.items() if tp.topic == ORDERS_EVENTS}
        self.placed: dict[str, datetime] = {}
        self.outcomes: dict[str, Outcome] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._kafka, enable_auto_commit=False, client_id="oms-bench")
        await consumer.start()
        consumer.assign(list(self._start))
        for tp, offset in self._start.items():
            consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while not self._stop.is_set():
                for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                    for record in records:
                        self._see(json.loads(record.value))
        finally:
            await consumer.stop()

    def _see(self, envelope: dict[str, str]) -> None:
        order_id = envelope["correlation_id"]
        at = datetime.fromisoformat(envelope["occurred_at"])
        if envelope["type"] == "OrderPlaced":
            self.placed[order_id] = at
        elif envelope["type"] in FINAL and order_id in self.placed and order_id not in self.outcomes:
            self.outcomes[order_id] = Outcome(FINAL[envelope["type"]], self.placed[order_id], at)

    async def wait_for(self, order_ids: Sequence[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while any(o not in self.outcomes for o in order_ids):
            if time.monotonic() > deadline or (self._task is not None and self._task.done()):
                return False
            await asyncio.sleep(0.2)
        return True

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
