"""Orders placed as a real upstream system places them: on a fixed schedule, each with its own
Idempotency-Key; a timeout, a connection error, a 503 or a 409 `request_in_progress` is retried with the same
key after a back-off until the client's patience runs out. An order counts as accepted when any attempt got
201 or 200. An upstream system that gave up still learns the outcome: the order id is a function of its
channel and external reference (`order_id_for`), so `GET /orders/{id}` tells placed from not placed.

The mix (seeded) makes the invariants mean something: most orders ship, some are declined by the payment
gateway, some pay through a gateway that loses its first answer, some ask for a scarce sku (rejected once it
is gone: oversold units would show), some have a second line from a sku only one warehouse has, and some
are cancelled by the client right after they were accepted.
"""

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import httpx

from oms_events.values import order_id_for

PLENTY_SKU = "SKU-CHAOS-A"
SECOND_SKU = "SKU-CHAOS-B"
SCARCE_SKU = "SKU-CHAOS-SCARCE"
WAREHOUSES = ("WH-BER", "WH-LON")
RETRIED_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Answers a client retries (409 only as `request_in_progress`); anything else is final."""


def starting_stock(orders: int) -> dict[tuple[str, str], int]:
    """(sku, warehouse) -> units received before the run: enough of the plenty skus for every order, the
    scarce one for about a third of the orders that ask for it."""
    return {
        (PLENTY_SKU, "WH-BER"): orders + 50,
        (PLENTY_SKU, "WH-LON"): orders // 2 + 20,
        (SECOND_SKU, "WH-LON"): orders + 50,
        (SCARCE_SKU, "WH-BER"): max(3, orders // 60),
    }


@dataclass(frozen=True)
class PlannedOrder:
    number: int
    body: dict[str, Any]
    cancel: bool

    @property
    def order_id(self) -> str:
        return str(order_id_for(self.body["channel"], self.body["external_reference"]))

    @property
    def total_minor(self) -> int:
        return sum(line["quantity"] * line["unit_price_minor"] for line in self.body["lines"])


def plan(orders: int, run_id: str, rng: random.Random) -> list[PlannedOrder]:
    planned = []
    for i in range(orders):
        roll = rng.random()
        token = "tok_approve"
        lines = [{"sku": PLENTY_SKU, "quantity": rng.randint(1, 2), "unit_price_minor": rng.choice((990, 1500, 2450))}]
        if roll < 0.06:
            token = "tok_decline_insufficient_funds"
        elif roll < 0.12:
            token = "tok_transient_error"
        elif roll < 0.18:
            lines = [{"sku": SCARCE_SKU, "quantity": 1, "unit_price_minor": 5000}]
        elif roll < 0.26:
            lines.append({"sku": SECOND_SKU, "quantity": 1, "unit_price_minor": 700})
        customer: dict[str, Any] = {
            "customer_id": f"chaos-{i % 50}",
            "name": "Chaos Customer",
            "email": "chaos@example.com",
        }
        if i % 3 == 0:
            customer["phone"] = f"+4915{rng.randint(10_000_000, 99_999_999)}"
        body = {
            "channel": ("web", "marketplace", "phone", "store")[i % 4],
            "external_reference": f"CHAOS-{run_id}-{i}",
            "customer": customer,
            "lines": lines,
            "currency": "EUR",
            "shipping_address": {
                "name": "C",
                "line1": "1 Street",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
            "delivery_method": "standard",
            "payment_token": token,
        }
        planned.append(PlannedOrder(i, body, cancel=rng.random() < 0.04))
    return planned


@dataclass
class Placement:
    """What the upstream system saw."""

    accepted: dict[str, PlannedOrder] = field(default_factory=dict)
    gave_up: list[PlannedOrder] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    """Final answers other than 200/201, by status and error code."""
    attempts: Counter[str] = field(default_factory=Counter)
    """Every attempt's outcome: 201, 200, 503, timeout, ... (retries included)."""
    cancels: Counter[str] = field(default_factory=Counter)
    began: float = 0.0
    ended: float = 0.0


class Upstream:
    def __init__(self, url: str, api_key: str, *, timeout_s: float = 5.0, patience_s: float = 300.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=url, timeout=timeout_s, headers={"X-API-Key": api_key}, limits=httpx.Limits(max_connections=200)
        )
        self._patience_s = patience_s

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, result: Counter[str], **kwargs: Any) -> httpx.Response | None:
        """One request, retried with the same headers (the Idempotency-Key among them) until it gets a final
        answer or the client's patience runs out (then None)."""
        deadline = time.monotonic() + self._patience_s
        backoff = 0.25
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
                retry = response.status_code in RETRIED_STATUSES and _retryable(response)
                result[str(response.status_code)] += 1
            except httpx.TimeoutException:
                result["timeout"] += 1
                response, retry = None, True
            except httpx.TransportError as exc:
                result[type(exc).__name__] += 1
                response, retry = None, True
            if not retry:
                return response
            if time.monotonic() > deadline:
                return None
            hinted = _retry_after(response)
            await asyncio.sleep(hinted if hinted is not None else backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 4.0)

    async def place(self, order: PlannedOrder, result: Placement) -> None:
        key = str(uuid4())
        response = await self._send(
            "POST", "/orders", result.attempts, json=order.body, headers={"Idempotency-Key": key}
        )
        if response is None:
            result.gave_up.append(order)
            return
        if response.status_code in (200, 201):
            placed = response.json()["order_id"]
            if placed != order.order_id:
                raise AssertionError(f"order {order.number} placed as {placed}, expected {order.order_id}")
            result.accepted[placed] = order
            if order.cancel:
                await self.cancel(order, result)
        else:
            result.refused[f"{response.status_code} {_error(response)}"] += 1

    async def cancel(self, order: PlannedOrder, result: Placement) -> None:
        response = await self._send(
            "POST",
            f"/orders/{order.order_id}/cancel",
            Counter(),
            json={"reason": "customer changed their mind", "requested_by": "chaos-upstream"},
        )
        result.cancels["no answer" if response is None else f"{response.status_code} {_error(response)}"] += 1

    async def outcome(self, order: PlannedOrder) -> dict[str, Any] | None:
        """What became of an order the client gave up on: the order, or None when it was never placed."""
        response = await self._send("GET", f"/orders/{order.order_id}", Counter())
        if response is None:
            raise RuntimeError(f"order-service does not answer about order {order.order_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    async def run(self, orders: list[PlannedOrder], per_second: float, max_in_flight: int = 64) -> Placement:
        """One order every 1/rate s on a fixed schedule, whatever the earlier ones are waiting for, with at
        most `max_in_flight` orders being placed (retried) at once, as an upstream system's connection
        pool or worker count bounds it: past that, the next order waits for a free slot."""
        result = Placement(began=time.monotonic())
        tasks = []
        slots = asyncio.Semaphore(max_in_flight)

        async def one(order: PlannedOrder) -> None:
            try:
                await self.place(order, result)
            finally:
                slots.release()

        for n, order in enumerate(orders):
            delay = result.began + n / per_second - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            tasks.append(asyncio.create_task(one(order)))
        await asyncio.gather(*tasks)
        result.ended = time.monotonic()
        return result


def _retryable(response: httpx.Response) -> bool:
    if response.status_code != 409:
        return True
    return _error(response) == "request_in_progress"


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    try:
        return min(float(response.headers["retry-after"]), 5.0)
    except (KeyError, ValueError):
        return None


def is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
