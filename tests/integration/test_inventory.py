"""inventory-service on the real system: backorders that wait for stock and go on when it arrives (or are
cancelled), stock events keyed by sku and the availability view, replenishment, and many parallel orders
for scarce stock."""

import asyncio
import json
from typing import Any

from harness import OPS_KEY, WAREHOUSE_KEY, System, eventually, order_body, unique_sku
from oms_events import topics

PRICE = 1_250
INVENTORY = "inventory-service"


async def _place_backorder(system: System, sku: str, quantity: int) -> str:
    body = {**order_body([(sku, quantity, PRICE)]), "allow_backorder": True}
    async with system.http() as http:
        response = await http.post("/orders", json=body)
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def _receive(system: System, sku: str, warehouse: str, quantity: int) -> dict[str, Any]:
    async with system.http(WAREHOUSE_KEY, service=INVENTORY) as http:
        response = await http.post(
            "/stock/receipts", json={"sku": sku, "warehouse_id": warehouse, "quantity": quantity}
        )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_backorder_waits_visibly_and_ships_when_goods_arrive(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 1})
    order_id = await _place_backorder(system, sku, 3)

    order = await system.wait_for_status(order_id, {"backordered", "rejected"})
    assert order["status"] == "backordered"
    assert "waiting for stock" in order["timeline"][-1]["description"]
    async with system.http(WAREHOUSE_KEY, service=INVENTORY) as http:
        waiting = (await http.get("/backorders")).json()
    assert order_id in {b["order_id"] for b in waiting}

    await _receive(system, sku, "WH-BER", 2)
    order = await system.wait_for_status(order_id, {"shipped", "rejected", "cancelled"})
    assert order["status"] == "shipped"
    events = [t["event"] for t in order["timeline"]]
    assert events[:3] == ["OrderPlaced", "OrderBackordered", "OrderStockReserved"]
    inventory = [e["type"] for e in await system.envelopes(topics.INVENTORY_EVENTS, order_id)]
    assert inventory == ["StockBackordered", "StockReserved"]
    await system.wait_for_stock(sku, {"WH-BER": (0, 0)})


async def test_cancelling_a_backordered_order_drops_its_backorder(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 0})
    order_id = await _place_backorder(system, sku, 2)
    await system.wait_for_status(order_id, {"backordered"})
    async with system.http() as http:
        response = await http.post(
            f"/orders/{order_id}/cancel", json={"reason": "too slow", "requested_by": "customer"}
        )
    assert response.status_code == 202, response.text
    order = await system.wait_for_status(order_id, {"cancelled"})
    assert order["status"] == "cancelled"

    await _receive(system, sku, "WH-BER", 5)
    await system.wait_for_stock(sku, {"WH-BER": (5, 0)})
    await asyncio.sleep(1)
    assert (await system.stock(sku)) == {"WH-BER": (5, 0)}  # nothing was reserved for the cancelled order


async def test_stock_events_are_keyed_by_sku_and_feed_the_availability_view(system: System) -> None:
    sku = unique_sku()
    await _receive(system, sku, "WH-LON", 6)
    order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"shipped"})
    await system.wait_for_stock(sku, {"WH-LON": (4, 0)})

    records = await system.records(topics.INVENTORY_EVENTS, sku)
    changes = [json.loads(r.value) for r in records]
    assert [c["payload"]["cause"] for c in changes] == ["goods_receipt", "reservation", "shipment"]
    assert [c["payload"]["sequence"] for c in changes] == [1, 2, 3]
    assert changes[1]["correlation_id"] == order_id  # the order that caused it
    assert {r.partition for r in records} == {records[0].partition}

    async def view() -> dict[str, Any]:
        async with system.http(OPS_KEY, service=INVENTORY) as http:
            body: dict[str, Any] = (await http.get(f"/availability/{sku}")).json()
            return body

    shown = await eventually(view, lambda v: [w["sequence"] for w in v["warehouses"]] == [3], timeout_s=30)
    assert (shown["available"], shown["warehouses"][0]["on_hand"]) == (4, 4)
    async with system.http(OPS_KEY, service=INVENTORY) as http:
        assert (await http.post("/availability/rebuild")).status_code == 200
    assert (await view())["warehouses"] == shown["warehouses"]


async def test_a_purchase_order_is_raised_once_at_the_reorder_point_and_received(system: System) -> None:
    sku = unique_sku()
    await _receive(system, sku, "WH-BER", 5)
    async with system.http(OPS_KEY, service=INVENTORY) as http:
        put = await http.put(
            f"/replenishment/policies/{sku}/WH-BER",
            json={"reorder_point": 3, "reorder_quantity": 20, "lead_time_days": 4},
        )
        assert put.status_code == 200, put.text
    for _ in range(2):  # 5 -> 3 (at the reorder point) -> 1 (below; one is open already)
        order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
        await system.wait_for_status(order_id, {"shipped"})

    async def raised() -> list[dict[str, Any]]:
        return [
            json.loads(r.value)
            for r in await system.records(topics.INVENTORY_EVENTS, sku)
            if json.loads(r.value)["type"] == "PurchaseOrderRaised"
        ]

    [purchase_order] = await eventually(raised, lambda found: len(found) >= 1)
    assert (purchase_order["payload"]["quantity"], purchase_order["payload"]["available"]) == (20, 3)
    purchase_order_id = purchase_order["payload"]["purchase_order_id"]
    async with system.http(WAREHOUSE_KEY, service=INVENTORY) as http:
        received = await http.post(f"/purchase-orders/{purchase_order_id}/receive", json={})
        assert received.json()["status"] == "received", received.text
    await system.wait_for_stock(sku, {"WH-BER": (21, 0)})
    assert len(await raised()) == 1


async def test_parallel_orders_for_scarce_stock_ship_exactly_what_there_is(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 3, "WH-LON": 2})
    async with system.http() as http:
        responses = await asyncio.gather(*(system.place_order([(sku, 1, PRICE)], client=http) for _ in range(9)))
    order_ids = [r.json()["order_id"] for r in responses]
    finals = await asyncio.gather(
        *(system.wait_for_status(o, {"shipped", "rejected"}, timeout_s=90) for o in order_ids)
    )
    assert sorted(o["status"] for o in finals) == ["rejected"] * 4 + ["shipped"] * 5
    await system.wait_for_stock(sku, {"WH-BER": (0, 0), "WH-LON": (0, 0)})


async def test_an_expired_reservation_cancels_the_held_order_and_frees_its_stock(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 4})
    big = 600_000  # two of them are above HOLD_ABOVE_MINOR: the order waits on hold with its stock reserved
    order_id = (await system.place_order([(sku, 2, big)])).json()["order_id"]
    await system.wait_for_status(order_id, {"on_hold"})
    await system.wait_for_stock(sku, {"WH-BER": (4, 2)})

    async with system.http(OPS_KEY, service=INVENTORY) as http:
        reservation = (await http.get(f"/reservations/{order_id}")).json()
        assert (reservation["status"], reservation["expires_at"] is not None) == ("reserved", True)
        assert (await http.post(f"/reservations/{order_id}/expire")).status_code == 202
        again = await http.post(f"/reservations/{order_id}/expire")
        assert (again.status_code, again.json()["error"]) == (409, "reservation_not_expirable")

    order = await system.wait_for_status(order_id, {"cancelled", "needs_attention", "rejected"})
    assert order["status"] == "cancelled"
    events = [t["event"] for t in order["timeline"]]
    assert events[-4:] == [
        "OrderReservationExpired",
        "OrderCancellationRequested",
        "OrderStockReleased",
        "OrderCancelled",
    ]
    [cancelled] = [e for e in await system.envelopes(topics.ORDERS_EVENTS, order_id) if e["type"] == "OrderCancelled"]
    assert cancelled["payload"]["reason_code"] == "reservation_expired"
    inventory = [e["type"] for e in await system.envelopes(topics.INVENTORY_EVENTS, order_id)]
    assert inventory == ["StockReserved", "ReservationExpired", "StockReleased"]
    await system.wait_for_stock(sku, {"WH-BER": (4, 0)})
