"""POST /orders answers within its deadline, also while the database hangs, and a retry never places twice.

An upstream system that gets no answer cannot tell a placed order from a lost one. Past the deadline the
API answers 503 with Retry-After; the placement may have committed meanwhile, and the retry (same
Idempotency-Key) then gets that order, not a second one. The hanging database is a real TCP server that
accepts connections and never answers, as a database host does while it is partitioned away.
"""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import func, select

from oms_events import default_registry
from oms_events.messages import OrderPlaced
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.testing import throwaway_schema
from order_service.adapters.idempotency import IdempotencyStore
from order_service.adapters.order_repository import OrderRepository
from order_service.adapters.projection import OrderProjection, projection_metadata
from order_service.adapters.tables import metadata, order_references
from order_service.entrypoints.auth import API_KEYS_ADAPTER, Authenticator
from order_service.entrypoints.http import create_app
from order_service.handlers import OrderCommands, OrderPlacement, OrderQueries, PlacementResult

REGISTRY = default_registry()
OPS_KEY = "test-ops-key-0123456789"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DEADLINE_S = 0.5


class CommittedTooLate(OrderPlacement):
    """The first placement commits, but only after the deadline: its answer is lost."""

    async def place_once(self, placed: OrderPlaced, payment_token: str) -> PlacementResult:
        if not hasattr(self, "_late"):
            self._late = True
            # Shielded: the deadline cancels the request, not the placement that is committing.
            result = await asyncio.shield(super().place_once(placed, payment_token))
            await asyncio.sleep(DEADLINE_S * 3)
            return result
        return await super().place_once(placed, payment_token)


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_deadline", metadata, projection_metadata) as database:
        yield database


def repository() -> OrderRepository:
    return OrderRepository(EventStore(), REGISTRY, timedelta(seconds=60), OrderProjection())


async def client(db: Database, placement: OrderPlacement) -> httpx.AsyncClient:
    auth = Authenticator(
        API_KEYS_ADAPTER.validate_python([{"name": "ops", "key": OPS_KEY, "role": "ops"}]),
        tracking_secret="test-tracking-secret-0123456789",
    )
    repo = repository()
    app = create_app(
        placement,
        OrderQueries(db, repo, REGISTRY),
        OrderCommands(db, repo, REGISTRY),
        IdempotencyStore(Redis.from_url(REDIS_URL)),
        auth,
        placement_deadline_s=DEADLINE_S,
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"X-API-Key": OPS_KEY}
    )


def body() -> dict[str, Any]:
    return {
        "channel": "web",
        "external_reference": f"W-{uuid4().hex[:10]}",
        "customer": {"customer_id": "c-1", "name": "Jane", "email": "jane@example.com"},
        "lines": [{"sku": "SKU-A", "quantity": 1, "unit_price_minor": 1000}],
        "currency": "EUR",
        "shipping_address": {"name": "J", "line1": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "delivery_method": "standard",
        "payment_token": "tok_approve",
    }


async def test_a_placement_past_its_deadline_is_a_503_and_the_retry_gets_the_one_order(db: Database) -> None:
    order = body()
    key = {"Idempotency-Key": f"k-{uuid4().hex}"}
    async with await client(db, CommittedTooLate(db, repository(), REGISTRY)) as http:
        started = time.monotonic()
        first = await http.post("/orders", json=order, headers=key)
        took = time.monotonic() - started
        assert first.status_code == 503, first.text
        assert first.json()["error"] == "unavailable"
        assert first.headers["Retry-After"] == "1"
        assert took < DEADLINE_S * 2.5
        await asyncio.sleep(DEADLINE_S)  # the late placement finishes committing
        retry = await http.post("/orders", json=order, headers=key)
    assert retry.status_code == 200, retry.text
    async with db.transaction() as session:
        placed = await session.scalar(
            select(func.count())
            .select_from(order_references)
            .where(order_references.c.external_reference == order["external_reference"])
        )
    assert placed == 1
    assert retry.json()["order_id"]


async def test_a_database_that_does_not_answer_gets_a_503_within_the_deadline(db: Database) -> None:
    silent: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hanging = Database(f"postgresql+asyncpg://oms:oms@127.0.0.1:{port}/oms", schema="order_service")
    order = body()
    key = {"Idempotency-Key": f"k-{uuid4().hex}"}
    try:
        async with await client(db, OrderPlacement(hanging, repository(), REGISTRY)) as http:
            started = time.monotonic()
            answer = await http.post("/orders", json=order, headers=key)
            took = time.monotonic() - started
            # The key was given back: a retry is served again (here: the same deadline), never 409.
            again = await http.post("/orders", json=order, headers=key)
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await hanging.dispose()
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert took < DEADLINE_S * 2.5
    assert again.status_code == 503, again.text
