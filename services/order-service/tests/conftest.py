"""Fixtures of the tests that drive order-service the way it runs: a schema of its own, its HTTP API."""

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from order_test_builders import repository
from redis.asyncio import Redis

from oms_events import default_registry
from oms_runtime.db import Database
from oms_runtime.testing import throwaway_schema
from order_service.adapters.idempotency import IdempotencyStore
from order_service.adapters.projection import projection_metadata
from order_service.adapters.tables import metadata
from order_service.entrypoints.auth import API_KEYS_ADAPTER, Authenticator
from order_service.entrypoints.http import create_app
from order_service.handlers import OrderCommands, OrderPlacement, OrderQueries

REGISTRY = default_registry()
OPS_KEY = "test-ops-key-0123456789"


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_orders", metadata, projection_metadata) as database:
        yield database


@pytest_asyncio.fixture
async def http(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    repo = repository()
    auth = Authenticator(
        API_KEYS_ADAPTER.validate_python([{"name": "ops", "key": OPS_KEY, "role": "ops"}]),
        tracking_secret="test-tracking-secret-0123456789",
    )
    # No Idempotency-Key is sent here, so Redis is never asked (its client connects on first use).
    idempotency = IdempotencyStore(Redis.from_url("redis://127.0.0.1:1/0"))
    app = create_app(
        OrderPlacement(db, repo, REGISTRY),
        OrderQueries(db, repo, REGISTRY),
        OrderCommands(db, repo, REGISTRY),
        idempotency,
        auth,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers={"X-API-Key": OPS_KEY}) as client:
        yield client
