"""Holds end to end: the risk rule holds a big order until ops release it; a manual hold on a placed
order, then a cancel; holds and releases are for ops keys only."""

from harness import CHANNEL_KEYS, SETTLED, System, timeline_events, unique_sku
from oms_events import topics

BIG_PRICE = 600_000  # two of them: 1,200,000, above HOLD_ABOVE_MINOR (1,000,000 in conftest.py)
PRICE = 2_500


async def test_an_order_above_the_threshold_waits_on_hold_until_ops_release_it_then_ships(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    order_id = (await system.place_order([(sku, 2, BIG_PRICE)])).json()["order_id"]

    held = await system.wait_for_status(order_id, {"on_hold", *SETTLED})
    assert held["status"] == "on_hold"
    assert held["held_by"] == "risk-rule"
    assert "1200000" in held["hold_reason"]
    assert timeline_events(held) == ["OrderPlaced", "OrderStockReserved", "OrderPutOnHold"]
    assert await system.envelopes(topics.PAYMENTS_COMMANDS, order_id) == []
    await system.wait_for_stock(sku, {"WH-BER": (5, 2)})

    async with system.http() as http:
        # Too late for a manual hold, and it is on hold already.
        again = await http.post(f"/orders/{order_id}/hold", json={"reason": "x", "held_by": "ops-ana"})
        assert again.status_code == 409
        assert again.json()["error"] == "hold_not_allowed"
        found = (await http.get("/orders", params={"status": "on_hold", "limit": 200})).json()
        assert order_id in {o["order_id"] for o in found["orders"]}

        released = await http.post(
            f"/orders/{order_id}/release-hold", json={"released_by": "ops-ana", "note": "customer verified"}
        )
        assert released.status_code == 202, released.text
        assert released.json()["status"] == "awaiting_payment"
        assert released.json()["hold_reason"] is None

    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "shipped"
    assert timeline_events(order)[:5] == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderPutOnHold",
        "OrderHoldReleased",
        "OrderConfirmed",
    ]
    [capture] = await system.envelopes(topics.PAYMENTS_COMMANDS, order_id)
    assert capture["type"] == "CapturePayment"
    assert capture["payload"]["amount_minor"] == 2 * BIG_PRICE
    await system.wait_for_stock(sku, {"WH-BER": (3, 0)})

    async with system.http() as http:
        twice = await http.post(f"/orders/{order_id}/release-hold", json={"released_by": "ops-ana", "note": "n"})
        assert twice.status_code == 409
        assert twice.json()["error"] == "release_not_allowed"


async def test_a_manual_hold_on_a_placed_order_then_a_cancel_gives_the_stock_back(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-LON": 8})
    inventory = system.services["inventory-service"]
    inventory.stop()
    try:
        order_id = (await system.place_order([(sku, 3, PRICE)])).json()["order_id"]
        async with system.http() as http:
            held = await http.post(
                f"/orders/{order_id}/hold", json={"reason": "address on a watch list", "held_by": "ops-ana"}
            )
            assert held.status_code == 202, held.text
            # The reservation is still awaited: the order stays placed, held for when it answers.
            assert held.json()["status"] == "placed"
            assert held.json()["held_by"] == "ops-ana"
    finally:
        inventory.start()
        await inventory.wait_started()

    order = await system.wait_for_status(order_id, {"on_hold", *SETTLED})
    assert order["status"] == "on_hold"
    assert order["hold_reason"] == "address on a watch list"
    await system.wait_for_stock(sku, {"WH-LON": (8, 3)})

    async with system.http() as http:
        cancelled = await http.post(
            f"/orders/{order_id}/cancel", json={"reason": "fraud confirmed", "requested_by": "ops-ana"}
        )
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["status"] == "cancelling"

    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "cancelled"
    assert timeline_events(order) == [
        "OrderPlaced",
        "OrderPutOnHold",
        "OrderStockReserved",
        "OrderCancellationRequested",
        "OrderStockReleased",
        "OrderCancelled",
    ]
    assert await system.envelopes(topics.PAYMENTS_COMMANDS, order_id) == []
    await system.wait_for_stock(sku, {"WH-LON": (8, 0)})


async def test_holds_and_releases_are_for_ops_keys_only(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 2})
    async with system.http(CHANNEL_KEYS["web"]) as web:
        order_id = (await system.place_order([(sku, 1, PRICE)], channel="web", client=web)).json()["order_id"]
        hold = await web.post(f"/orders/{order_id}/hold", json={"reason": "x", "held_by": "me"})
        assert hold.status_code == 403
        assert hold.json()["error"] == "forbidden"
        release = await web.post(f"/orders/{order_id}/release-hold", json={"released_by": "me", "note": "x"})
        assert release.status_code == 403
        assert release.json()["error"] == "forbidden"

    async with system.http() as http:
        missing = await http.post(
            "/orders/00000000-0000-0000-0000-000000000000/hold", json={"reason": "x", "held_by": "ops"}
        )
        assert missing.status_code == 404
        assert missing.json()["error"] == "order_not_found"
        bad = await http.post(f"/orders/{order_id}/hold", json={"reason": ""})
        assert bad.status_code == 422
        assert {f["field"] for f in bad.json()["fields"]} == {"reason", "held_by"}

    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "shipped"
    assert "OrderPutOnHold" not in timeline_events(order)
