"""Fulfilment by hand (manual warehouses), carrier updates, and the saga's paths once fulfilment started, end to
end through the five services on the real broker, database and cache."""

from typing import Any

import httpx

from harness import CARRIER_KEY, MANUAL_WAREHOUSES, WAREHOUSE_KEY, System, eventually, unique_sku
from oms_events import topics

PRICE = 1_250
WH_A, WH_B = MANUAL_WAREHOUSES
PARCEL = {"weight_grams": 1800, "length_mm": 350, "width_mm": 250, "height_mm": 120}


def _events(order: dict[str, Any]) -> list[str]:
    return [t["event"] for t in order["timeline"]]


async def _manual_stock(system: System, sku: str, levels: dict[str, int]) -> None:
    for warehouse in levels:
        await system.add_warehouse(warehouse)
    await system.set_stock(sku, levels)


async def _shipments(warehouse: httpx.AsyncClient, order_id: str, count: int) -> dict[str, dict[str, Any]]:
    """The order's shipments in fulfilment, by warehouse, once all `count` exist."""
    body = await eventually(
        lambda: _get(warehouse, f"/orders/{order_id}/shipments"), lambda b: len(b["shipments"]) == count
    )
    return {s["warehouse_id"]: s for s in body["shipments"]}


async def _get(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post(path, json=body or {})
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    result: dict[str, Any] = response.json()
    return result


async def _pick_pack_ship(warehouse: httpx.AsyncClient, shipment: dict[str, Any]) -> dict[str, Any]:
    sid = shipment["shipment_id"]
    await _post(warehouse, f"/shipments/{sid}/picking")
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in shipment["lines"]]
    await _post(warehouse, f"/shipments/{sid}/picks", {"lines": lines})
    await _post(warehouse, f"/shipments/{sid}/pack", {"parcels": [PARCEL]})
    return await _post(warehouse, f"/shipments/{sid}/ship")


async def test_a_split_order_is_partially_shipped_then_tracked_to_delivery(system: System) -> None:
    sku = unique_sku()
    await _manual_stock(system, sku, {WH_A: 3, WH_B: 2})
    order_id = (await system.place_order([(sku, 5, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})

    async with (
        system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse,
        system.http(CARRIER_KEY, service="fulfilment-service") as carrier,
        system.http() as orders,
    ):
        shipments = await _shipments(warehouse, order_id, 2)
        listed = await _get(warehouse, f"/warehouses/{WH_A}/pick-lists")
        assert listed["mode"] == "manual"
        assert shipments[WH_A]["shipment_id"] in {p["shipment_id"] for p in listed["pick_lists"]}
        # Manual picking has no saga deadline: the order waits for the warehouse, not for a timer.
        first = await _pick_pack_ship(warehouse, shipments[WH_A])
        assert first["status"] == "shipped"

        order = await system.wait_for_status(order_id, {"partially_shipped"})
        assert [s["warehouse_id"] for s in order["shipments"]] == [WH_A]
        tracking = await _get(orders, f"/orders/{order_id}/tracking")
        assert tracking["shipment_status"] == "partially_shipped"
        assert [(s["warehouse_id"], s["tracking_number"]) for s in tracking["shipments"]] == [
            (WH_A, first["tracking_number"])
        ]
        assert [(p["warehouse_id"], p["status"]) for p in tracking["preparing"]] == [(WH_B, "created")]

        track = first["tracking_number"]
        for status, at, where, expected, duplicate in (
            ("in_transit", "2026-03-03T18:00:00Z", "Leipzig hub", "in_transit", False),
            ("delivered", "2026-03-05T11:00:00Z", "Berlin", "delivered", False),
            ("in_transit", "2026-03-03T20:00:00Z", "Hannover hub", "delivered", False),  # late: recorded only
            ("delivered", "2026-03-05T11:00:00Z", "Berlin", "delivered", True),  # the same update again
        ):
            body = {"tracking_number": track, "status": status, "occurred_at": at, "location": where}
            result = await _post(carrier, f"/carriers/{first['carrier']}/updates", body)
            assert (result["status"], result["duplicate"]) == (expected, duplicate)

        def delivered(t: dict[str, Any]) -> bool:
            return bool(t["shipments"]) and t["shipments"][0]["status"] == "delivered"

        tracking = await eventually(lambda: _get(orders, f"/orders/{order_id}/tracking"), delivered)
        [shipment] = tracking["shipments"]
        assert (shipment["location"], shipment["carrier"], shipment["delivered_at"][:10]) == (
            "Berlin",
            first["carrier"],
            "2026-03-05",
        )
        assert shipment["estimated_delivery"] == first["estimated_delivery"]
        assert tracking["delivered"] is False, "the second shipment has not left yet"

        await _pick_pack_ship(warehouse, shipments[WH_B])
        order = await system.wait_for_status(order_id, {"shipped"})
        tracking = await _get(orders, f"/orders/{order_id}/tracking")
        assert (tracking["shipment_status"], tracking["preparing"], tracking["delivered"]) == ("shipped", [], False)
    assert sorted(s["warehouse_id"] for s in order["shipments"]) == [WH_A, WH_B]
    fulfilment = [e["type"] for e in await system.envelopes(topics.FULFILMENT_EVENTS, order_id)]
    assert fulfilment.count("Shipped") == 2
    assert fulfilment.count("ShipmentDelivered") == 1
    assert fulfilment.count("ShipmentInTransit") == 2  # the late one is published too, marked superseded
    await system.wait_for_stock(sku, {WH_A: (0, 0), WH_B: (0, 0)})


async def test_nothing_found_after_capture_refunds_releases_and_cancels(system: System) -> None:
    sku = unique_sku()
    await _manual_stock(system, sku, {WH_A: 4})
    order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse:
        shipment = (await _shipments(warehouse, order_id, 1))[WH_A]
        await _post(warehouse, f"/shipments/{shipment['shipment_id']}/picking")
        result = await _post(warehouse, f"/shipments/{shipment['shipment_id']}/picks", {"lines": []})
    assert result["status"] == "failed"

    order = await system.wait_for_status(order_id, {"cancelled", "needs_attention"})
    assert order["status"] == "cancelled"
    events = _events(order)
    assert events[-4:] == ["OrderFulfilmentFailed", "OrderPaymentRefunded", "OrderStockReleased", "OrderCancelled"]
    payments = [e for e in await system.envelopes(topics.PAYMENTS_EVENTS, order_id)]
    assert [e["type"] for e in payments] == ["PaymentCaptured", "PaymentRefunded"]
    assert payments[1]["payload"]["amount_minor"] == 2 * PRICE
    # Refund before release: the saga undoes in reverse order.
    commands = [e["type"] for e in await system.envelopes(topics.INVENTORY_COMMANDS, order_id)]
    assert commands == ["ReserveStock", "ReleaseStock"]
    await system.wait_for_stock(sku, {WH_A: (4, 0)})


async def test_a_cancel_once_fulfilment_started_stops_the_shipments_and_undoes_the_rest(system: System) -> None:
    sku = unique_sku()
    await _manual_stock(system, sku, {WH_A: 3, WH_B: 3})
    order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse, system.http() as orders:
        [shipment] = (await _shipments(warehouse, order_id, 1)).values()
        await _post(warehouse, f"/shipments/{shipment['shipment_id']}/picking")
        response = await orders.post(f"/orders/{order_id}/cancel", json={"reason": "changed my mind"})
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "cancelling"
        order = await system.wait_for_status(order_id, {"cancelled", "needs_attention"})
        assert order["status"] == "cancelled"
        stopped = await _get(warehouse, f"/shipments/{shipment['shipment_id']}")
        assert stopped["status"] == "cancelled"
        too_late = await warehouse.post(f"/shipments/{shipment['shipment_id']}/picks", json={"lines": []})
        assert too_late.status_code == 409
    # The shipment's own progress (picking, cancelled) may interleave with the cancel: left out here.
    assert [e for e in _events(order) if e != "OrderShipmentUpdated"][-5:] == [
        "OrderCancellationRequested",
        "OrderFulfilmentCancelled",
        "OrderPaymentRefunded",
        "OrderStockReleased",
        "OrderCancelled",
    ]
    async with system.http() as orders:
        tracking = await _get(orders, f"/orders/{order_id}/tracking")
    assert [(p["shipment_id"], p["status"]) for p in tracking["preparing"]] == [(shipment["shipment_id"], "cancelled")]
    fulfilment = [e["type"] for e in await system.envelopes(topics.FULFILMENT_EVENTS, order_id)]
    assert fulfilment[-2:] == ["ShipmentCancelled", "FulfilmentCancelled"]
    payments = [e["type"] for e in await system.envelopes(topics.PAYMENTS_EVENTS, order_id)]
    assert payments == ["PaymentCaptured", "PaymentRefunded"]
    levels = await system.stock(sku)
    await system.wait_for_stock(sku, {wh: (on_hand, 0) for wh, (on_hand, _) in levels.items()})


async def test_a_partially_shipped_order_can_no_longer_be_cancelled(system: System) -> None:
    sku = unique_sku()
    await _manual_stock(system, sku, {WH_A: 1, WH_B: 1})
    order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse, system.http() as orders:
        shipments = await _shipments(warehouse, order_id, 2)
        await _pick_pack_ship(warehouse, shipments[WH_A])
        await system.wait_for_status(order_id, {"partially_shipped"})
        refused = await orders.post(f"/orders/{order_id}/cancel", json={"reason": "too late"})
        assert refused.status_code == 409
        assert refused.json()["error"] == "cancel_not_allowed"
        # The rest of the order goes on.
        await _pick_pack_ship(warehouse, shipments[WH_B])
    await system.wait_for_status(order_id, {"shipped"})
