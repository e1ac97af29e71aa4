"""An order whose stream holds an OrderCancelled in its old (v1) stored form is still read correctly:
the aggregate, the timeline and a projection rebuild all see it through the upcaster."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
from order_test_builders import placed_order
from sqlalchemy import text

from oms_events import Envelope, default_registry
from oms_events.messages import OrderCancellationRequested
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.testing import throwaway_schema
from order_service.adapters.order_repository import OrderRepository, stream_id
from order_service.adapters.projection import OrderProjection, projection_metadata, rebuild
from order_service.adapters.tables import metadata
from order_service.domain.order import OrderStatus
from order_service.domain.timeline import describe

REGISTRY = default_registry()


@pytest_asyncio.fixture
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_upcast", metadata, projection_metadata) as database:
        yield database


async def test_an_old_stored_cancellation_is_read_through_the_upcaster(db: Database) -> None:
    placed = placed_order()
    order_id = placed.order_id
    requested = OrderCancellationRequested(order_id=order_id, reason="duplicate", requested_by="phone-desk")
    stored_v1 = Envelope(
        type="OrderCancelled",
        schema_version=1,
        producer="order-service",
        correlation_id=str(order_id),
        payload={"order_id": str(order_id), "reason": "duplicate order, ticket 4711", "requested_by": "phone-desk"},
    )
    store = EventStore()
    async with db.transaction() as session:
        envelopes = [
            REGISTRY.wrap(placed, producer="order-service"),
            REGISTRY.wrap(requested, producer="order-service"),
        ]
        await store.append(session, stream_id(order_id), "order", 0, [*envelopes, stored_v1])

    repository = OrderRepository(store, REGISTRY, timedelta(seconds=30), OrderProjection())
    async with db.transaction() as session:
        order = await repository.load(session, order_id)
        [_, _, cancelled] = [REGISTRY.decode(s.envelope) for s in await repository.history(session, order_id)]
    assert order.status is OrderStatus.CANCELLED
    assert order.cancel_reason == "duplicate order, ticket 4711"
    assert describe(cancelled) == "Order cancelled (unspecified): duplicate order, ticket 4711"

    counts = await rebuild(db, store, REGISTRY)
    assert counts
    async with db.transaction() as session:
        status = await session.scalar(text("SELECT status FROM order_summaries WHERE order_id = :id"), {"id": order_id})
    assert status == "cancelled"
