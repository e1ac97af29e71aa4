"""Demo data: orders from every channel that show the happy path and the compensations.

Used by `oms demo load` and by deploy/local/demo.py (`make run`).
"""

import asyncio
import itertools
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx

FINAL = {"shipped", "rejected", "cancelled"}

ADDRESS_BERLIN = {
    "name": "Jane Doe",
    "line1": "Invalidenstrasse 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
ADDRESS_LONDON = {
    "name": "Sam Smith",
    "line1": "1 Baker Street",
    "city": "London",
    "postal_code": "NW1 6XE",
    "country": "GB",
}

DEMO_ORDERS: list[tuple[str, dict[str, Any]]] = [
    (
        "web shop, two items, approved",
        {
            "channel": "web",
            "customer": {"customer_id": "cust-1001", "name": "Jane Doe", "email": "jane.doe@example.com"},
            "lines": [
                {"sku": "SKU-TSHIRT-RED-M", "quantity": 2, "unit_price_minor": 1999},
                {"sku": "SKU-MUG-BLUE", "quantity": 1, "unit_price_minor": 1299},
            ],
            "currency": "EUR",
            "shipping_address": ADDRESS_BERLIN,
            "delivery_method": "standard",
            "payment_token": "tok_approve",
        },
    ),
    (
        "marketplace, poster from London, next day",
        {
            "channel": "marketplace",
            "customer": {"customer_id": "mp-77", "name": "Sam Smith", "email": "sam.smith@example.co.uk"},
            "lines": [{"sku": "SKU-POSTER-A2", "quantity": 3, "unit_price_minor": 899}],
            "currency": "GBP",
            "shipping_address": ADDRESS_LONDON,
            "delivery_method": "next_day",
            "payment_token": "tok_visa",
        },
    ),
    (
        "phone desk, hoodie, expedited",
        {
            "channel": "phone",
            "customer": {
                "customer_id": "cust-2002",
                "name": "Ali Kaya",
                "email": "ali.kaya@example.com",
                "phone": "+49 30 5550100",
            },
            "lines": [{"sku": "SKU-HOODIE-GREY-L", "quantity": 1, "unit_price_minor": 4999}],
            "currency": "EUR",
            "shipping_address": ADDRESS_BERLIN,
            "delivery_method": "expedited",
            "payment_token": "tok_mastercard",
        },
    ),
    (
        "store POS, more than the stock holds: rejected (out of stock)",
        {
            "channel": "store",
            "customer": {"customer_id": "pos-5", "name": "Mia Lang", "email": "mia.lang@example.com"},
            "lines": [{"sku": "SKU-LIMITED", "quantity": 2, "unit_price_minor": 15000}],
            "currency": "EUR",
            "shipping_address": ADDRESS_BERLIN,
            "delivery_method": "standard",
            "payment_token": "tok_approve",
        },
    ),
    (
        "web shop, card declined: stock released, rejected",
        {
            "channel": "web",
            "customer": {"customer_id": "cust-3003", "name": "Noah Berg", "email": "noah.berg@example.com"},
            "lines": [{"sku": "SKU-MUG-BLUE", "quantity": 4, "unit_price_minor": 1299}],
            "currency": "EUR",
            "shipping_address": ADDRESS_BERLIN,
            "delivery_method": "standard",
            "payment_token": "tok_decline_insufficient_funds",
        },
    ),
]


def demo_orders(count: int, run_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`count` orders cycling through the templates, each with its own external reference."""
    run = run_id or uuid4().hex[:6].upper()
    templates = itertools.cycle(DEMO_ORDERS)
    return [
        (title, {**body, "external_reference": f"DEMO-{run}-{n}"})
        for n, (title, body) in zip(range(1, count + 1), templates, strict=False)
    ]


async def place(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/orders", json=body, headers={"Idempotency-Key": str(uuid4())})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    order_id: str = response.json()["order_id"]
    return order_id


async def wait_final(
    http: httpx.AsyncClient, order_ids: list[str], timeout_s: float, on_final: Callable[[str, str], None]
) -> dict[str, str]:
    """Polls until every order is final (or the timeout); returns order id -> last status."""
    statuses: dict[str, str] = {}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len([s for s in statuses.values() if s in FINAL]) < len(order_ids):
        if asyncio.get_running_loop().time() > deadline:
            break
        for order_id in order_ids:
            if statuses.get(order_id) in FINAL:
                continue
            status = (await http.get(f"/orders/{order_id}")).json()["status"]
            statuses[order_id] = status
            if status in FINAL:
                on_final(order_id, status)
        await asyncio.sleep(0.2)
    return statuses
