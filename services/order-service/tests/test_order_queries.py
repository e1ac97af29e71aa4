"""Order search, stuck orders and tracking, and their HTTP routes, on the real PostgreSQL.

Rows are written through the projection from real envelopes whose times are set explicitly.
"""

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

import order_service.adapters.projection
import order_service.entrypoints.query_routes
from oms_events import Message, default_registry
from oms_events.messages import (
    OrderCancelled,
    OrderConfirmed,
    OrderNeedsAttention,
    OrderPlaced,
    OrderRefundActionTaken,
    OrderRefundFailed,
    OrderRejected,
    OrderShipped,
    OrderStockReserved,
)
from oms_events.values import Address, Allocation, Channel, Customer, DeliveryMethod, OrderLine
from oms_runtime.db import Database
from oms_runtime.testing import stderr_logger, throwaway_schema
from order_service.adapters.projection import OrderProjection, Summary, projection_metadata
from order_service.adapters.tables import metadata
from order_service.entrypoints.auth import API_KEYS_ADAPTER, Authenticator
from order_service.entrypoints.query_routes import query_router
from order_service.queries import InvalidQueryError, OrderSearch, decode_cursor, encode_cursor
from order_service.query_views import OrderSummaryView

REGISTRY = default_registry()
PROJECTION = OrderProjection()
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CHANNELS = (Channel.WEB, Channel.MARKETPLACE, Channel.PHONE, Channel.STORE)


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_orders", metadata, projection_metadata) as database:
        yield database


@pytest_asyncio.fixture
async def search(db: Database) -> OrderSearch:
    """An empty read model for each test, and a fixed clock."""
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM order_summaries"))
    return OrderSearch(db, clock=lambda: NOW)


@pytest.fixture(autouse=True)
def fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logs go to this test's stderr, whatever another test did to structlog's configuration."""
    logger = stderr_logger()
    for module in (order_service.adapters.projection, order_service.entrypoints.query_routes):
        monkeypatch.setattr(module, "log", logger)


def placed_event(order_id: UUID, customer_id: str, channel: Channel) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        channel=channel,
        external_reference=f"REF-{order_id.hex[:8]}",
        customer=Customer(customer_id=customer_id, name="Jane", email="jane@example.com"),
        lines=[OrderLine(sku="SKU-A", quantity=1, unit_price_minor=700)],
        currency="EUR",
        total_minor=700,
        shipping_address=Address(name="Jane", line1="Main 1", city="Berlin", postal_code="10115", country="DE"),
        delivery_method=DeliveryMethod.STANDARD,
    )


ROWS: dict[UUID, Summary | None] = {}
"""Each order's row after the events projected so far: the base of its next events, as a writer has it."""


async def project(
    db: Database, order_id: UUID, status: str, events: Sequence[tuple[datetime, Message]], version: int
) -> None:
    batch = [
        (REGISTRY.wrap(event, producer="order-service").model_copy(update={"occurred_at": at}), event)
        for at, event in events
    ]
    async with db.transaction() as session:
        ROWS[order_id] = await PROJECTION.apply(
            session, order_id, status, batch, version=version, before=ROWS.get(order_id)
        )


async def order(
    db: Database,
    placed_at: datetime,
    *,
    customer_id: str = "c-1",
    channel: Channel = Channel.WEB,
    status: str = "placed",
    last_event_at: datetime | None = None,
    order_id: UUID | None = None,
) -> UUID:
    """An order placed at `placed_at`; with `last_event_at`, a later event brings it to `status`."""
    order_id = order_id or uuid4()
    await project(db, order_id, "placed", [(placed_at, placed_event(order_id, customer_id, channel))], version=1)
    if last_event_at is not None:
        later: Message
        if status == "needs_attention":
            later = OrderNeedsAttention(order_id=order_id, step="RefundPayment", reason="gateway down")
        elif status == "rejected":
            later = OrderRejected(order_id=order_id, reason_code="out_of_stock", reason="no stock")
        elif status == "cancelled":
            later = OrderCancelled(
                order_id=order_id,
                reason_code="requested",
                customer_message="Your order has been cancelled as requested.",
                note="customer",
                requested_by="support",
            )
        else:
            later = OrderStockReserved(
                order_id=order_id,
                reservation_id=uuid4(),
                allocations=[Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=1)],
            )
        await project(db, order_id, status, [(last_event_at, later)], version=2)
    return order_id


async def shipped_order(db: Database) -> UUID:
    order_id = uuid4()
    t = NOW - timedelta(days=1)
    placed = placed_event(order_id, "c-track", Channel.WEB)
    reserved = OrderStockReserved(
        order_id=order_id,
        reservation_id=uuid4(),
        allocations=[Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=1)],
    )
    confirmed = OrderConfirmed(order_id=order_id, payment_id=uuid4(), amount_minor=700, currency="EUR")
    shipment = OrderShipped(
        order_id=order_id,
        shipment_id=uuid4(),
        warehouse_id="WH-1",
        carrier="DHL",
        tracking_number="JD0001",
        tracking_url="https://track.example/JD0001",
        estimated_delivery=date(2026, 3, 12),
    )
    events: list[tuple[datetime, Message]] = [
        (t, placed),
        (t + timedelta(minutes=1), reserved),
        (t + timedelta(minutes=2), confirmed),
        (t + timedelta(hours=3), shipment),
    ]
    await project(db, order_id, "shipped", events, version=4)
    return order_id


async def twenty_five_orders(db: Database) -> list[UUID]:
    """Placed one hour apart, newest last; five share one placing time to test the tie-break."""
    ids = []
    for i in range(25):
        at = NOW - timedelta(hours=30 - i) if i < 20 else NOW - timedelta(hours=5)
        ids.append(
            await order(
                db,
                at,
                customer_id=f"c-{i % 3}",
                channel=CHANNELS[i % 4],
                status="awaiting_payment" if i % 2 else "placed",
                last_event_at=at + timedelta(minutes=1) if i % 2 else None,
            )
        )
    return ids


def newest_first(summaries: Sequence[OrderSummaryView]) -> bool:
    keys = [(s.placed_at, s.order_id) for s in summaries]
    return keys == sorted(keys, reverse=True)


# ---------------------------------------------------------------- search


async def test_pages_walk_every_order_once_newest_first(db: Database, search: OrderSearch) -> None:
    ids = await twenty_five_orders(db)
    seen: list[OrderSummaryView] = []
    cursor = None
    pages = 0
    while True:
        page = await search.search(limit=10, cursor=cursor)
        pages += 1
        seen.extend(page.orders)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert [len(p) for p in (seen[:10], seen[10:20], seen[20:])] == [10, 10, 5]
    assert sorted(s.order_id for s in seen) == sorted(ids)
    assert newest_first(seen)
    assert seen[-1].placed_at == NOW - timedelta(hours=30)


async def test_a_page_boundary_inside_equal_placing_times_skips_and_repeats_nothing(
    db: Database, search: OrderSearch
) -> None:
    ids = await twenty_five_orders(db)
    first = await search.search(limit=3)  # the five newest share one placing time
    assert {s.placed_at for s in first.orders} == {NOW - timedelta(hours=5)}
    newer = await order(db, NOW)  # arrives between two page reads
    rest = await search.search(limit=200, cursor=first.next_cursor)
    assert newer not in {s.order_id for s in rest.orders}
    assert sorted([s.order_id for s in first.orders] + [s.order_id for s in rest.orders]) == sorted(ids)
    assert rest.next_cursor is None


async def test_filters_combine_and_paginate(db: Database, search: OrderSearch) -> None:
    await twenty_five_orders(db)
    by_customer = await search.search(customer_id="c-1", limit=200)
    assert len(by_customer.orders) == 8
    assert {s.customer_id for s in by_customer.orders} == {"c-1"}

    waiting = await search.search(status="awaiting_payment", limit=200)
    assert len(waiting.orders) == 12
    assert {s.status for s in waiting.orders} == {"awaiting_payment"}
    assert {s.last_event_type for s in waiting.orders} == {"OrderStockReserved"}

    phone = await search.search(channel="phone", limit=200)
    assert {s.channel for s in phone.orders} == {"phone"}
    assert len(phone.orders) == 6

    window = await search.search(placed_from=NOW - timedelta(hours=30), placed_to=NOW - timedelta(hours=25))
    assert [s.placed_at for s in window.orders] == [NOW - timedelta(hours=h) for h in (26, 27, 28, 29, 30)]

    naive_from = (NOW - timedelta(hours=6)).replace(tzinfo=None)  # no zone: UTC
    assert len((await search.search(placed_from=naive_from)).orders) == 5

    combined: list[OrderSummaryView] = []
    cursor = None
    while True:
        page = await search.search(customer_id="c-0", channel="web", limit=1, cursor=cursor)
        combined.extend(page.orders)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert {(s.customer_id, s.channel) for s in combined} == {("c-0", "web")}
    assert len(combined) == len({s.order_id for s in combined}) == 3
    assert newest_first(combined)

    assert (await search.search(customer_id="nobody")).orders == []


async def test_bad_search_parameters_name_the_field(search: OrderSearch) -> None:
    for kwargs, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"placed_from": NOW, "placed_to": NOW - timedelta(seconds=1)}, "placed_from"),
    ):
        with pytest.raises(InvalidQueryError) as raised:
            await search.search(**kwargs)
        assert raised.value.field == field


def test_cursors_round_trip_and_reject_tampering() -> None:
    order_id = uuid4()
    at = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, order_id)) == (at, order_id)
    for bad in ("", "!!!", "WyJ4Il0", encode_cursor(at, order_id)[:-3]):
        with pytest.raises(InvalidQueryError):
            decode_cursor(bad)


# ---------------------------------------------------------------- stuck


async def test_stuck_lists_quiet_open_orders_and_every_order_needing_attention(
    db: Database, search: OrderSearch
) -> None:
    quiet_placed = await order(db, NOW - timedelta(hours=2))
    quiet_paying = await order(
        db, NOW - timedelta(hours=3), status="awaiting_payment", last_event_at=NOW - timedelta(minutes=30)
    )
    parked = await order(
        db, NOW - timedelta(minutes=5), status="needs_attention", last_event_at=NOW - timedelta(minutes=1)
    )
    await order(db, NOW - timedelta(minutes=10))  # recent: not stuck
    await order(db, NOW - timedelta(days=2), status="rejected", last_event_at=NOW - timedelta(days=2))  # final
    await order(db, NOW - timedelta(days=2), status="cancelled", last_event_at=NOW - timedelta(days=1))  # final
    shipped = await shipped_order(db)  # final

    stuck = await search.stuck(timedelta(minutes=15), limit=100)
    assert stuck.as_of == NOW
    assert stuck.older_than_s == 900
    assert [s.order_id for s in stuck.orders] == [quiet_placed, quiet_paying, parked]  # oldest last event first
    assert [s.stuck_for_s for s in stuck.orders] == [7200, 1800, 60]
    assert [s.reason for s in stuck.orders] == ["no_progress", "no_progress", "needs_attention"]
    assert shipped not in {s.order_id for s in stuck.orders}

    assert [s.order_id for s in (await search.stuck(timedelta(hours=1), limit=100)).orders] == [quiet_placed, parked]
    assert [s.order_id for s in (await search.stuck(timedelta(minutes=15), limit=1)).orders] == [quiet_placed]
    with pytest.raises(InvalidQueryError):
        await search.stuck(timedelta(minutes=-1))


async def test_stuck_lists_a_shipped_order_whose_partial_refund_failed_until_an_operator_acts(
    db: Database, search: OrderSearch
) -> None:
    order_id = await shipped_order(db)
    refund = f"return:{uuid4()}"
    failed = OrderRefundFailed(
        order_id=order_id,
        refund=refund,
        amount_minor=700,
        currency="EUR",
        reason_code="exceeds_captured",
        reason="refused",
    )
    await project(db, order_id, "shipped", [(NOW - timedelta(minutes=2), failed)], version=5)
    # However recent: a failed refund waits for a human.
    [stuck] = [s for s in (await search.stuck(timedelta(hours=1), limit=100)).orders if s.order_id == order_id]
    assert (stuck.status, stuck.reason) == ("shipped", "refund_failed")
    assert [(f.refund, f.amount_minor, f.reason_code) for f in stuck.failed_refunds] == [
        (refund, 700, "exceeds_captured")
    ]
    skipped = OrderRefundActionTaken(order_id=order_id, refund=refund, action="skip", operator="ops", note="voucher")
    await project(db, order_id, "shipped", [(NOW - timedelta(minutes=1), skipped)], version=6)
    assert order_id not in {s.order_id for s in (await search.stuck(timedelta(hours=1), limit=100)).orders}


# ---------------------------------------------------------------- tracking


async def test_tracking_shows_the_shipment_without_the_history(db: Database, search: OrderSearch) -> None:
    order_id = await shipped_order(db)
    view = await search.tracking(order_id)
    assert view is not None
    assert (view.status, view.shipment_status, view.carrier, view.tracking_number) == (
        "shipped",
        "shipped",
        "DHL",
        "JD0001",
    )
    assert view.tracking_url == "https://track.example/JD0001"
    assert view.estimated_delivery == date(2026, 3, 12)
    assert view.last_update == NOW - timedelta(days=1) + timedelta(hours=3)
    [shipment] = view.shipments
    assert (shipment.warehouse_id, shipment.shipped_at) == ("WH-1", view.last_update)

    placed = await search.tracking(await order(db, NOW))
    assert placed is not None
    assert (placed.status, placed.shipment_status, placed.carrier, placed.shipments) == (
        "placed",
        "not_shipped",
        None,
        [],
    )
    assert await search.tracking(uuid4()) is None


# ---------------------------------------------------------------- HTTP


OPS_KEY = "test-ops-key-0123456789"
WEB_KEY = "test-web-key-0123456789"
AUTH = Authenticator(
    API_KEYS_ADAPTER.validate_python(
        [
            {"name": "ops", "key": OPS_KEY, "role": "ops"},
            {"name": "web-shop", "key": WEB_KEY, "role": "channel", "channel": "web"},
        ]
    ),
    tracking_secret="test-tracking-secret-0123456789",
)


def app_for(search: OrderSearch) -> FastAPI:
    """The router first, then a catch-all order route like the service's, as the wiring must be."""
    app = FastAPI()
    app.include_router(query_router(search, AUTH))

    @app.get("/orders/{order_id}")
    async def get_order(order_id: UUID) -> dict[str, str]:
        return {"route": "get_order"}

    return app


@pytest_asyncio.fixture
async def client(search: OrderSearch) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(search))
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers={"X-API-Key": OPS_KEY}) as http:
        yield http


async def test_http_search_pages_with_the_cursor(db: Database, client: httpx.AsyncClient) -> None:
    await twenty_five_orders(db)
    first = await client.get("/orders", params={"limit": 20, "customer_id": "c-2"})
    assert first.status_code == 200
    body = first.json()
    assert len(body["orders"]) == 8
    assert body["next_cursor"] is None
    assert set(body["orders"][0]) >= {"order_id", "status", "placed_at", "last_event_at", "tracking_number"}

    page = await client.get("/orders", params={"limit": 20, "status": "placed", "channel": "web"})
    assert page.status_code == 200
    assert {o["status"] for o in page.json()["orders"]} == {"placed"}
    assert {o["channel"] for o in page.json()["orders"]} == {"web"}

    first = await client.get("/orders", params={"limit": 20, "placed_to": (NOW - timedelta(hours=4)).isoformat()})
    assert len(first.json()["orders"]) == 20
    second = await client.get("/orders", params={"limit": 20, "cursor": first.json()["next_cursor"]})
    assert second.status_code == 200
    assert len(second.json()["orders"]) == 5
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"channel": "fax"}, "channel"),
        ({"placed_from": "yesterday"}, "placed_from"),
        ({"placed_from": "2026-03-02T00:00:00Z", "placed_to": "2026-03-01T00:00:00Z"}, "placed_from"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"customer_id": ""}, "customer_id"),
    ],
)
async def test_http_search_rejects_bad_parameters_with_a_structured_422(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await client.get("/orders", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert [f["field"] for f in body["fields"]] == [field]
    assert field in body["message"]


async def test_http_stuck_is_not_taken_for_an_order_id(db: Database, client: httpx.AsyncClient) -> None:
    quiet = await order(db, NOW - timedelta(hours=2))
    await order(db, NOW - timedelta(minutes=1))
    response = await client.get("/orders/stuck", params={"older_than_s": 900, "limit": 100})
    assert response.status_code == 200
    body = response.json()
    assert body["older_than_s"] == 900
    assert [(o["order_id"], o["stuck_for_s"], o["reason"]) for o in body["orders"]] == [
        (str(quiet), 7200, "no_progress")
    ]
    assert len((await client.get("/orders/stuck")).json()["orders"]) == 1  # defaults: 900 s, 100 orders

    for params, field in (({"older_than_s": "-1"}, "older_than_s"), ({"limit": "0"}, "limit")):
        bad = await client.get("/orders/stuck", params=params)
        assert bad.status_code == 422
        assert [f["field"] for f in bad.json()["fields"]] == [field]

    other = await client.get(f"/orders/{uuid4()}")
    assert other.json() == {"route": "get_order"}  # the service's own route still gets order ids


async def test_http_tracking(db: Database, client: httpx.AsyncClient) -> None:
    order_id = await shipped_order(db)
    response = await client.get(f"/orders/{order_id}/tracking")
    assert response.status_code == 200
    body = response.json()
    assert body["order_id"] == str(order_id)
    assert (body["status"], body["carrier"], body["tracking_number"]) == ("shipped", "DHL", "JD0001")
    assert body["estimated_delivery"] == "2026-03-12"
    assert "timeline" not in body

    unknown = uuid4()
    missing = await client.get(f"/orders/{unknown}/tracking")
    assert missing.status_code == 404
    assert missing.json() == {"error": "order_not_found", "message": f"No order {unknown}.", "fields": []}

    bad = await client.get("/orders/not-a-uuid/tracking")
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json()["fields"]] == ["order_id"]


async def test_http_a_failing_database_is_a_503_not_a_500() -> None:
    unreachable = Database("postgresql+asyncpg://oms:oms@127.0.0.1:1/none", schema="none", pool_size=1)
    transport = httpx.ASGITransport(app=app_for(OrderSearch(unreachable)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers={"X-API-Key": OPS_KEY}) as http:
        response = await http.get("/orders")
    await unreachable.dispose()
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"


async def test_http_keys_and_tracking_tokens(db: Database, client: httpx.AsyncClient) -> None:
    order_id = await shipped_order(db)
    tracking = (await client.get(f"/orders/{order_id}/tracking")).json()
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://test")
    web = httpx.AsyncClient(transport=client._transport, base_url="http://test", headers={"X-API-Key": WEB_KEY})
    async with anonymous, web:
        # No key: searching is refused, naming the cause; a customer's token opens the tracking view.
        refused = await anonymous.get("/orders")
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthenticated"
        token = AUTH.tracking_token(order_id)
        assert (await anonymous.get(f"/orders/{order_id}/tracking", params={"token": token})).json() == tracking
        wrong = await anonymous.get(f"/orders/{order_id}/tracking", params={"token": token[:-2] + "xx"})
        assert wrong.status_code == 404
        assert (await anonymous.get(f"/orders/{order_id}/tracking")).status_code == 404

        # A channel key sees its own channel only, and no ops views.
        own = (await web.get("/orders")).json()
        assert {o["channel"] for o in own["orders"]} <= {"web"}
        other = await web.get("/orders", params={"channel": "marketplace"})
        assert other.status_code == 403
        assert other.json()["error"] == "forbidden"
        stuck = await web.get("/orders/stuck")
        assert stuck.status_code == 403
        channel = tracking["channel"]
        expected = 200 if channel == "web" else 404
        assert (await web.get(f"/orders/{order_id}/tracking")).status_code == expected
