"""Cancels that race in-flight replies, and the order queries, end to end."""

from harness import CHANNEL_KEYS, SETTLED, System, eventually, timeline_events, unique_sku
from oms_events import topics

PRICE = 2_500


async def test_a_cancel_that_overtakes_the_reservation_releases_it_and_cancels(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})
    inventory = system.services["inventory-service"]
    inventory.stop()
    try:
        order_id = (await system.place_order([(sku, 4, PRICE)])).json()["order_id"]
        async with system.http() as http:
            response = await http.post(f"/orders/{order_id}/cancel", json={"reason": "ordered twice"})
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "cancelling"
    finally:
        inventory.start()
        await inventory.wait_started()

    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "cancelled"
    assert order["cancel_reason"] == "ordered twice"
    assert timeline_events(order) == [
        "OrderPlaced",
        "OrderCancellationRequested",
        "OrderStockReleased",
        "OrderCancelled",
    ]
    # Inventory reserved (the command was first in line), then released: the late StockReserved changed nothing.
    replies = [e["type"] for e in await system.envelopes(topics.INVENTORY_EVENTS, order_id)]
    assert replies == ["StockReserved", "StockReleased"]
    assert await system.envelopes(topics.PAYMENTS_COMMANDS, order_id) == []
    await system.wait_for_stock(sku, {"WH-BER": (10, 0)})


async def test_a_capture_that_lands_after_the_cancel_is_refunded_before_the_stock_is_released(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-LON": 5})
    payment = system.services["payment-service"]
    payment.stop()
    try:
        order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
        await system.wait_for_status(order_id, {"awaiting_payment"})
        async with system.http() as http:
            stuck = (await http.get("/orders/stuck", params={"older_than_s": 0})).json()
            assert order_id in {o["order_id"] for o in stuck["orders"]}
            response = await http.post(
                f"/orders/{order_id}/cancel", json={"reason": "found it cheaper", "requested_by": "phone-desk"}
            )
        assert response.status_code == 202, response.text
    finally:
        payment.start()
        await payment.wait_started()

    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "cancelled"
    assert timeline_events(order) == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderCancellationRequested",
        "OrderPaymentCaptured",
        "OrderPaymentRefunded",
        "OrderStockReleased",
        "OrderCancelled",
    ]
    payments = await system.envelopes(topics.PAYMENTS_EVENTS, order_id)
    assert [e["type"] for e in payments] == ["PaymentAuthorised", "PaymentCaptured", "PaymentRefunded"]
    assert payments[1]["payload"]["amount_minor"] == payments[2]["payload"]["amount_minor"] == 2 * PRICE
    assert await system.envelopes(topics.FULFILMENT_COMMANDS, order_id) == []
    await system.wait_for_stock(sku, {"WH-LON": (5, 0)})


async def test_cancel_is_refused_once_shipped_and_queries_find_the_order(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 3})
    order_id = (await system.place_order([(sku, 1, PRICE)], channel="marketplace")).json()["order_id"]
    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "shipped"

    async with system.http() as http:
        refused = await http.post(f"/orders/{order_id}/cancel", json={"reason": "too late"})
        assert refused.status_code == 409
        assert refused.json()["error"] == "cancel_not_allowed"

        tracking = (await http.get(f"/orders/{order_id}/tracking")).json()
        assert tracking["status"] == "shipped"
        assert tracking["tracking_number"] == order["shipments"][0]["tracking_number"]

        page = (await http.get("/orders", params={"channel": "marketplace", "status": "shipped", "limit": 200})).json()
        assert order_id in {o["order_id"] for o in page["orders"]}
        bad = await http.get("/orders", params={"status": "lost"})
        assert bad.status_code == 422
        assert bad.json()["fields"][0]["field"] == "status"

        not_waiting = await http.post(
            f"/orders/{order_id}/actions", json={"action": "retry", "operator": "ops", "note": "n"}
        )
        assert not_waiting.status_code == 409
        assert not_waiting.json()["error"] == "action_not_allowed"

    still = await eventually(lambda: system.order(order_id), lambda o: o["status"] == "shipped")
    assert "OrderCancellationRequested" not in timeline_events(still)


async def test_api_keys_roles_and_tracking_tokens(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    async with system.http(CHANNEL_KEYS["web"]) as web, system.http(CHANNEL_KEYS["store"]) as store:
        placed = await system.place_order([(sku, 1, PRICE)], channel="web", client=web)
        assert placed.status_code == 201
        order_id = placed.json()["order_id"]
        token = placed.json()["tracking_token"]
        assert token

        # A channel key places and reads its own channel's orders only.
        wrong_channel = await system.place_order([(sku, 1, PRICE)], channel="marketplace", client=web)
        assert wrong_channel.status_code == 403
        assert wrong_channel.json()["error"] == "forbidden"
        assert (await web.get(f"/orders/{order_id}")).status_code == 200
        hidden = await store.get(f"/orders/{order_id}")
        assert hidden.status_code == 404, "another channel's order does not even exist for this key"
        assert (await store.post(f"/orders/{order_id}/cancel", json={"reason": "x"})).status_code == 404
        # Ops-only routes.
        assert (await web.get("/orders/stuck")).status_code == 403
        action = await web.post(f"/orders/{order_id}/actions", json={"action": "retry", "operator": "x", "note": "x"})
        assert action.status_code == 403

    await system.wait_for_status(order_id, SETTLED)
    async with system.http(None) as anonymous, system.http("not-a-real-key-0000000000") as stranger:
        assert (await anonymous.get(f"/orders/{order_id}")).status_code == 401
        assert (await stranger.get(f"/orders/{order_id}")).json()["error"] == "unauthenticated"
        customer = await anonymous.get(f"/orders/{order_id}/tracking", params={"token": token})
        assert customer.status_code == 200
        assert customer.json()["status"] == "shipped"
        assert customer.json()["tracking_number"]
        forged = await anonymous.get(f"/orders/{order_id}/tracking", params={"token": "A" * len(token)})
        assert forged.status_code == 404
