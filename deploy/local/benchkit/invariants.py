"""After a run, from the services' own APIs: every order ended, nothing was done twice or lost.

- every order final (shipped: the bench's orders are paid with an approving token and stock suffices);
- one capture per order, of the order's total;
- stock conserved: on hand fell by exactly the units shipped, and nothing is left reserved;
- one notification per kind and channel per order, and as many emails in the SMTP sink as were sent.
Replicas must split the work, never double it: these checks hold for any --replicas.
"""

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchkit.load import BENCH_SKU, BENCH_WAREHOUSE


@dataclass(frozen=True)
class Stock:
    on_hand: int
    reserved: int


@dataclass
class Verdict:
    statuses: Counter[str] = field(default_factory=Counter)
    notifications: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str, limit: int = 20) -> None:
        if len(self.problems) < limit:
            self.problems.append(problem)
        elif len(self.problems) == limit:
            self.problems.append("(more problems left out)")


class Apis:
    """HTTP clients of each service (round robin over its replicas), with the ops or warehouse key."""

    def __init__(self, urls: dict[str, list[str]], ops_key: str, warehouse_key: str) -> None:
        self._clients: dict[str, itertools.cycle[httpx.AsyncClient]] = {}
        self._all: list[httpx.AsyncClient] = []
        for service, service_urls in urls.items():
            key = warehouse_key if service == "inventory-service" else ops_key
            clients = [httpx.AsyncClient(base_url=u, timeout=60, headers={"X-API-Key": key}) for u in service_urls]
            self._all += clients
            self._clients[service] = itertools.cycle(clients)

    def __call__(self, service: str) -> httpx.AsyncClient:
        return next(self._clients[service])

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._all))


async def stock(apis: Apis) -> Stock:
    response = await apis("inventory-service").get(f"/stock/{BENCH_SKU}")
    if response.status_code == 404:
        return Stock(0, 0)
    response.raise_for_status()
    body = response.json()
    return Stock(body["on_hand"], body["reserved"])


async def add_stock(apis: Apis, units: int, reference: str) -> None:
    response = await apis("inventory-service").post(
        "/stock/receipts",
        json={"sku": BENCH_SKU, "warehouse_id": BENCH_WAREHOUSE, "quantity": units, "reference": reference},
    )
    if response.status_code != 201:
        raise RuntimeError(f"could not receive {units} units of {BENCH_SKU}: {response.status_code} {response.text}")


async def _each(order_ids: Sequence[str], check: Callable[[str], Awaitable[None]], concurrency: int = 16) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(order_id: str) -> None:
        async with gate:
            await check(order_id)

    await asyncio.gather(*(one(o) for o in order_ids))


async def fetch_json(client: httpx.AsyncClient, path: str, attempts: int = 3) -> Any:
    for attempt in range(1, attempts + 1):
        try:
            response = await client.get(path)
        except httpx.TransportError:
            # A kept-alive connection the server closed just as it was reused: ask again.
            if attempt == attempts:
                raise
            continue
        response.raise_for_status()
        return response.json()
    raise AssertionError("unreachable")


async def check(apis: Apis, order_ids: Sequence[str], before: Stock, emails_in_sink: Callable[[], int]) -> Verdict:
    verdict = Verdict()
    emails_sent = 0

    async def one(order_id: str) -> None:
        nonlocal emails_sent
        order = await fetch_json(apis("order-service"), f"/orders/{order_id}")
        verdict.statuses[order["status"]] += 1
        if order["status"] != "shipped":
            verdict.fail(f"order {order_id} is {order['status']}, not shipped")
        payment = await fetch_json(apis("payment-service"), f"/payments/{order_id}")
        captures = [e for e in payment["history"] if e["type"] == "PaymentCaptured"]
        if len(captures) != 1 or payment["captured_minor"] != order["total_minor"]:
            verdict.fail(
                f"order {order_id}: {len(captures)} captures, {payment['captured_minor']} captured "
                f"of {order['total_minor']}"
            )
        sent = (await fetch_json(apis("notification-service"), f"/orders/{order_id}/notifications"))["notifications"]
        kinds = Counter(f"{n['kind']} ({n['channel']})" for n in sent)
        verdict.notifications.update(kinds)
        doubled = sorted(k for k, count in kinds.items() if count > 1)
        if doubled:
            verdict.fail(f"order {order_id}: more than one of {doubled}")
        emails_sent += sum(1 for n in sent if n["channel"] == "email" and n["status"] == "sent")

    await _each(order_ids, one)
    shipped = verdict.statuses["shipped"]
    kinds_per_order = {k: v for k, v in verdict.notifications.items() if v != len(order_ids)}
    if kinds_per_order:
        verdict.fail(f"not every order got each kind of notification once: {kinds_per_order} of {len(order_ids)}")
    after = await stock(apis)
    if before.on_hand - after.on_hand != shipped or after.reserved != before.reserved:
        verdict.fail(
            f"stock not conserved: on hand {before.on_hand} -> {after.on_hand} for {shipped} shipped units, "
            f"reserved {before.reserved} -> {after.reserved}"
        )
    in_sink = emails_in_sink()
    if in_sink != emails_sent:
        verdict.fail(f"{in_sink} emails in the SMTP sink, {emails_sent} recorded as sent")
    return verdict
