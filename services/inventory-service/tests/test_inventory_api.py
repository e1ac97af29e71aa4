"""inventory-service's HTTP API on the real PostgreSQL and Redis: who may do what, structured errors that
name the field, stock, receipts and adjustments, policies and purchase orders, reports, and the
availability view (kept by its consumer, rebuilt from the event store)."""

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest_asyncio
from inventory_kit import REGISTRY, Kit, inventory_kit, reserve
from redis.asyncio import Redis
from sqlalchemy import text

from inventory_service.adapters.availability_view import AvailabilityView
from inventory_service.availability import AvailabilityProjection
from inventory_service.entrypoints.http import create_app
from inventory_service.queries import InventoryQueries
from oms_events.messages import StockLevelChanged
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.testing import HandlerHarness

OPS, WAREHOUSE, CHANNEL = "ops-key-0123456789abcdef", "warehouse-key-0123456789abcdef", "web-key-0123456789abcdef"
LONDON = "london-key-0123456789abcdef"
KEYS = json.dumps(
    [
        {"name": "ops", "key": OPS, "role": "ops"},
        {"name": "wh-berlin", "key": WAREHOUSE, "role": "warehouse"},
        {"name": "web", "key": CHANNEL, "role": "channel", "channel": "web"},
        {"name": "wh-london", "key": LONDON, "role": "warehouse", "warehouse_id": "WH-LON"},
    ]
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Api:
    kit: Kit
    view: AvailabilityView
    projection: HandlerHarness
    http: httpx.AsyncClient

    def as_(self, key: str | None) -> dict[str, str]:
        return {"X-API-Key": key} if key else {}

    async def project(self) -> None:
        """Feeds every stock event the service published to the availability consumer (as Kafka would)."""
        for message in await self.kit.all_sent():
            if isinstance(message, StockLevelChanged):
                await self.projection.send(message)


@pytest_asyncio.fixture
async def api() -> AsyncIterator[Api]:
    redis = Redis.from_url(REDIS_URL)
    view = AvailabilityView(redis, f"test:availability:{uuid4().hex}:")
    try:
        async with inventory_kit() as kit:
            app = create_app(
                kit.commands,
                InventoryQueries(kit.db, kit.repo),
                view,
                kit.db,
                REGISTRY,
                ApiKeyAuthenticator.from_json(KEYS),
            )
            projection = HandlerHarness(kit.db, "availability", AvailabilityProjection(view).handler_map(), REGISTRY)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as http:
                await kit.stock("A", {"WH-BER": 10, "WH-LON": 4})
                yield Api(kit, view, projection, http)
    finally:
        await view.clear()
        await redis.aclose()


async def _post(api: Api, path: str, body: dict[str, Any], key: str | None = OPS) -> httpx.Response:
    return await api.http.post(path, json=body, headers=api.as_(key))


async def test_keys_decide_who_may_do_what(api: Api) -> None:
    receipt = {"sku": "A", "warehouse_id": "WH-BER", "quantity": 5}
    assert (await _post(api, "/stock/receipts", receipt, key=None)).status_code == 401
    assert (await _post(api, "/stock/receipts", receipt, key="wrong-key-0123456789")).status_code == 401
    refused = await _post(api, "/stock/receipts", receipt, key=CHANNEL)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert (await _post(api, "/stock/receipts", receipt, key=WAREHOUSE)).status_code == 201
    policy = {"reorder_point": 2, "reorder_quantity": 10, "lead_time_days": 1}
    put = await api.http.put("/replenishment/policies/A/WH-BER", json=policy, headers=api.as_(WAREHOUSE))
    assert put.status_code == 403  # policies are for ops
    assert (await api.http.get("/stock/A", headers=api.as_(CHANNEL))).status_code == 403
    assert (await api.http.get("/availability/A", headers=api.as_(CHANNEL))).status_code == 200


async def test_a_key_limited_to_one_warehouse_receives_and_adjusts_that_warehouse_only(api: Api) -> None:
    for path, body in (
        ("/stock/receipts", {"sku": "A", "warehouse_id": "WH-BER", "quantity": 5}),
        ("/stock/adjustments", {"sku": "A", "warehouse_id": "WH-BER", "quantity_change": -1, "reason": "broken"}),
    ):
        refused = await _post(api, path, body, key=LONDON)
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden"), path
        assert refused.json()["message"] == "This key acts for warehouse WH-LON only; warehouse WH-BER."
        own = await _post(api, path, {**body, "warehouse_id": "WH-LON"}, key=LONDON)
        assert own.status_code == 201, own.text
    levels = {
        w["warehouse_id"]: w["on_hand"]
        for w in (await api.http.get("/stock/A", headers=api.as_(OPS))).json()["warehouses"]
    }
    assert levels == {"WH-BER": 10, "WH-LON": 4 + 5 - 1}, "nothing happened in WH-BER"
    # A warehouse key without a warehouse acts for every warehouse (keys configured before scoping).
    assert (
        await _post(api, "/stock/receipts", {"sku": "A", "warehouse_id": "WH-BER", "quantity": 1}, key=WAREHOUSE)
    ).status_code == 201
    # A purchase order's goods arrive at its warehouse: only that warehouse's key (or an unlimited one) books them.
    put = await api.http.put(
        "/replenishment/policies/A/WH-BER",
        json={"reorder_point": 20, "order_up_to": 30, "lead_time_days": 5},
        headers=api.as_(OPS),
    )
    raised = put.json()["purchase_order_raised"]
    assert raised is not None
    refused = await _post(api, f"/purchase-orders/{raised}/receive", {}, key=LONDON)
    assert refused.status_code == 403
    assert f"purchase order {raised} belongs to warehouse WH-BER" in refused.json()["message"]
    assert (await _post(api, f"/purchase-orders/{uuid4()}/receive", {}, key=LONDON)).status_code == 404
    received = await _post(api, f"/purchase-orders/{raised}/receive", {}, key=WAREHOUSE)
    assert received.json()["status"] == "received"


async def test_bad_input_names_the_field_and_conflicts_are_409s(api: Api) -> None:
    bad = await _post(
        api, "/stock/adjustments", {"sku": "A", "warehouse_id": "WH-BER", "quantity_change": 0, "reason": ""}
    )
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["fields"]} == {"reason"}
    zero = await _post(
        api, "/stock/adjustments", {"sku": "A", "warehouse_id": "WH-BER", "quantity_change": 0, "reason": "x"}
    )
    assert zero.status_code == 422
    assert [f["field"] for f in zero.json()["fields"]] == ["quantity_change"]
    too_much = await _post(
        api, "/stock/adjustments", {"sku": "A", "warehouse_id": "WH-BER", "quantity_change": -11, "reason": "lost"}
    )
    assert too_much.status_code == 409
    assert too_much.json()["error"] == "insufficient_stock"
    nowhere = await _post(api, "/stock/receipts", {"sku": "A", "warehouse_id": "WH-NOPE", "quantity": 1})
    assert nowhere.status_code == 404
    assert nowhere.json()["error"] == "warehouse_not_found"
    both = await api.http.put(
        "/replenishment/policies/A/WH-BER",
        json={"reorder_point": 2, "reorder_quantity": 10, "order_up_to": 20, "lead_time_days": 1},
        headers=api.as_(OPS),
    )
    assert both.status_code == 422
    assert both.json()["fields"][0]["field"] == "reorder_quantity"
    assert (await api.http.get("/stock/NOPE", headers=api.as_(OPS))).json()["error"] == "stock_not_found"
    gone = await _post(api, f"/purchase-orders/{uuid4()}/receive", {})
    assert gone.json()["error"] == "purchase_order_not_found"


async def test_a_receipt_past_what_a_stock_level_holds_is_409_not_a_database_error(api: Api) -> None:
    # Receipts are limited per request; many of them could still pass 2^31-1 units on hand.
    async with api.kit.db.transaction() as session:
        await session.execute(
            text("UPDATE stock_levels SET on_hand = :units WHERE sku = 'A' AND warehouse_id = 'WH-BER'"),
            {"units": 2**31 - 10},
        )
    refused = await _post(api, "/stock/receipts", {"sku": "A", "warehouse_id": "WH-BER", "quantity": 100})
    assert (refused.status_code, refused.json()["error"]) == (409, "insufficient_stock")
    assert "more than a stock level holds" in refused.json()["message"]
    fits = await _post(api, "/stock/receipts", {"sku": "A", "warehouse_id": "WH-BER", "quantity": 9})
    assert (fits.status_code, fits.json()["on_hand"]) == (201, 2**31 - 1)


async def test_stock_per_sku_and_per_warehouse_after_receipts_and_adjustments(api: Api) -> None:
    await _post(
        api,
        "/stock/receipts",
        {"sku": "B", "warehouse_id": "WH-LON", "quantity": 7, "reference": "ASN-9"},
        key=WAREHOUSE,
    )
    adjusted = await _post(
        api,
        "/stock/adjustments",
        {"sku": "A", "warehouse_id": "WH-BER", "quantity_change": -3, "reason": "damaged"},
        key=WAREHOUSE,
    )
    assert adjusted.json() == {
        "sku": "A",
        "warehouse_id": "WH-BER",
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
        "safety_stock": 0,
    }
    await api.kit.harness.send(reserve(uuid4(), ("A", 2)))
    sku = (await api.http.get("/stock/A", headers=api.as_(WAREHOUSE))).json()
    assert (sku["on_hand"], sku["reserved"], sku["available"]) == (11, 2, 9)
    london = (await api.http.get("/warehouses/WH-LON/stock", headers=api.as_(WAREHOUSE))).json()
    assert [(lvl["sku"], lvl["on_hand"]) for lvl in london["levels"]] == [("A", 4), ("B", 7)]
    changed = [m for m in await api.kit.sent("A") if isinstance(m, StockLevelChanged)]
    assert (changed[0].cause, changed[0].reason, changed[0].reference) == ("adjustment", "damaged", "wh-berlin")


async def test_the_availability_view_follows_the_events_and_is_rebuilt_from_them(api: Api) -> None:
    await _post(api, "/stock/receipts", {"sku": "A", "warehouse_id": "WH-BER", "quantity": 5}, key=WAREHOUSE)
    await api.kit.harness.send(reserve(uuid4(), ("A", 3)))
    await api.project()
    await api.project()  # delivered twice: no second effect
    view = (await api.http.get("/availability/A", headers=api.as_(CHANNEL))).json()
    assert view["available"] == 12  # WH-LON's level was seeded without events: not in the view
    assert {(w["warehouse_id"], w["on_hand"], w["reserved"], w["sequence"]) for w in view["warehouses"]} == {
        ("WH-BER", 15, 3, 2)
    }

    # An old event arriving late never puts an older level back.
    [first, *_] = [m for m in await api.kit.sent("A") if isinstance(m, StockLevelChanged)]
    assert not await api.view.apply(first, "late")
    assert (await api.view.availability("A"))[0].on_hand == 15

    await api.view.clear()
    assert (await api.http.get("/availability/A", headers=api.as_(OPS))).json()["warehouses"] == []
    rebuilt = await _post(api, "/availability/rebuild", {})
    assert rebuilt.json()["levels"] == 1
    after = (await api.http.get("/availability/A", headers=api.as_(OPS))).json()

    def levels(body: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (w["warehouse_id"], w["on_hand"], w["reserved"], w["available"], w["sequence"]) for w in body["warehouses"]
        ]

    assert levels(after) == levels(view)
    # The rebuild published nothing: the outbox holds the same messages as before.
    assert len(await api.kit.all_sent()) == 3


async def test_policies_purchase_orders_backorders_and_reports(api: Api) -> None:
    put = await api.http.put(
        "/replenishment/policies/A/WH-LON",
        json={"reorder_point": 4, "order_up_to": 12, "lead_time_days": 5},
        headers=api.as_(OPS),
    )
    assert put.status_code == 200
    raised = put.json()["purchase_order_raised"]
    assert raised is not None  # 4 available is at the reorder point
    [open_po] = (await api.http.get("/purchase-orders?status=open", headers=api.as_(WAREHOUSE))).json()
    assert (open_po["purchase_order_id"], open_po["quantity"]) == (raised, 8)
    await api.http.put("/stock/A/warehouses/WH-BER/safety-stock", json={"safety_stock": 10}, headers=api.as_(OPS))
    await api.http.put("/skus/A/unit-cost", json={"unit_cost_minor": 250, "currency": "EUR"}, headers=api.as_(OPS))

    low = (await api.http.get("/reports/low-stock", headers=api.as_(WAREHOUSE))).json()
    assert {(x["warehouse_id"], tuple(x["reasons"]), x["open_purchase_order_id"]) for x in low} == {
        ("WH-LON", ("at_or_below_reorder_point",), raised),
        ("WH-BER", ("at_or_below_safety_stock",), None),
    }
    value = (await api.http.get("/reports/stock-value", headers=api.as_(OPS))).json()
    assert value["totals_minor"] == {"EUR": 14 * 250}
    by_warehouse = (await api.http.get("/reports/stock-by-warehouse", headers=api.as_(WAREHOUSE))).json()
    assert {(w["warehouse_id"], w["on_hand"]) for w in by_warehouse} >= {("WH-BER", 10), ("WH-LON", 4)}

    order_id = uuid4()
    await api.kit.harness.send(reserve(order_id, ("A", 15), backorder=True))  # 14 in all
    [waiting] = (await api.http.get("/backorders", headers=api.as_(WAREHOUSE))).json()
    assert waiting["order_id"] == str(order_id)
    received = await _post(api, f"/purchase-orders/{raised}/receive", {}, key=WAREHOUSE)
    assert received.json()["status"] == "received"
    assert (await api.http.get("/backorders", headers=api.as_(WAREHOUSE))).json() == []
    assert await api.kit.status(order_id) == "reserved"
    again = await _post(api, f"/purchase-orders/{raised}/receive", {}, key=WAREHOUSE)
    assert (again.status_code, again.json()["error"]) == (409, "purchase_order_closed")


async def test_a_reservation_can_be_read_and_expired_by_ops_only_while_unpaid(api: Api) -> None:
    order_id = uuid4()
    await api.kit.harness.send(reserve(order_id, ("A", 2)))
    seen = (await api.http.get(f"/reservations/{order_id}", headers=api.as_(WAREHOUSE))).json()
    assert seen["status"] == "reserved"
    assert seen["allocations"] == [{"sku": "A", "warehouse_id": "WH-BER", "quantity": 2}]
    assert (await api.http.post(f"/reservations/{order_id}/expire", headers=api.as_(WAREHOUSE))).status_code == 403
    assert (await api.http.post(f"/reservations/{order_id}/expire", headers=api.as_(OPS))).status_code == 202
    assert await api.kit.status(order_id) == "expired"
    again = await api.http.post(f"/reservations/{order_id}/expire", headers=api.as_(OPS))
    assert (again.status_code, again.json()["error"]) == (409, "reservation_not_expirable")
    missing = await api.http.get(f"/reservations/{uuid4()}", headers=api.as_(OPS))
    assert missing.json()["error"] == "reservation_not_found"
