"""Fulfilment by hand (manual warehouses), carrier updates, and the saga's paths once fulfilment started, end to
end through the five services on the real broker, database and cache."""

from typing import Any

from warehouse_steps import (
    PARCEL,
    get_json,
    manual_stock,
    pick_pack_ship,
    post_json,
    receive_and_inspect,
    return_of,
    shipments_by_warehouse,
)

from harness import CARRIER_KEY, MANUAL_WAREHOUSES, WAREHOUSE_KEY, System, eventually, timeline_events, unique_sku
from oms_events import topics

PRICE = 1_250
WH_A, WH_B = MANUAL_WAREHOUSES


async def _mails(system: System, order_id: str, kind: str) -> list[Any]:
    """The emails of one kind the customer got about the order (the test's SMTP server)."""
    return [m for m in system.mailbox if m["X-OMS-Order-Id"] == order_id and m["X-OMS-Notification-Kind"] == kind]


async def test_a_split_order_is_partially_shipped_then_tracked_to_delivery(system: System) -> None:
    sku = unique_sku()
    await manual_stock(system, sku, {WH_A: 3, WH_B: 2})
    order_id = (await system.place_order([(sku, 5, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})

    async with (
        system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse,
        system.http(CARRIER_KEY, service="fulfilment-service") as carrier,
        system.http() as orders,
    ):
        shipments = await shipments_by_warehouse(warehouse, order_id, 2)
        listed = await get_json(warehouse, f"/warehouses/{WH_A}/pick-lists")
        assert listed["mode"] == "manual"
        assert shipments[WH_A]["shipment_id"] in {p["shipment_id"] for p in listed["pick_lists"]}
        # Manual picking has no saga deadline: the order waits for the warehouse, not for a timer.
        first = await pick_pack_ship(warehouse, shipments[WH_A])
        assert first["status"] == "shipped"

        order = await system.wait_for_status(order_id, {"partially_shipped"})
        assert [s["warehouse_id"] for s in order["shipments"]] == [WH_A]
        tracking = await get_json(orders, f"/orders/{order_id}/tracking")
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
            result = await post_json(carrier, f"/carriers/{first['carrier']}/updates", body)
            assert (result["status"], result["duplicate"]) == (expected, duplicate)

        def delivered(t: dict[str, Any]) -> bool:
            return bool(t["shipments"]) and t["shipments"][0]["status"] == "delivered"

        tracking = await eventually(lambda: get_json(orders, f"/orders/{order_id}/tracking"), delivered)
        [shipment] = tracking["shipments"]
        assert (shipment["location"], shipment["carrier"], shipment["delivered_at"][:10]) == (
            "Berlin",
            first["carrier"],
            "2026-03-05",
        )
        assert shipment["estimated_delivery"] == first["estimated_delivery"]
        assert tracking["delivered"] is False, "the second shipment has not left yet"

        # One of WH_B's two units is not on the shelf: a partial shipment, and that unit is refunded.
        second = await pick_pack_ship(warehouse, shipments[WH_B], missing=1)
        assert [(line["sku"], line["quantity"]) for line in second["short"]] == [(sku, 1)]
        order = await system.wait_for_status(order_id, {"shipped"})
        tracking = await get_json(orders, f"/orders/{order_id}/tracking")
        assert (tracking["shipment_status"], tracking["preparing"], tracking["delivered"]) == ("shipped", [], False)
    assert sorted(s["warehouse_id"] for s in order["shipments"]) == [WH_A, WH_B]
    fulfilment = [e["type"] for e in await system.envelopes(topics.FULFILMENT_EVENTS, order_id)]
    assert fulfilment.count("Shipped") == 2
    assert fulfilment.count("ShipmentDelivered") == 1
    assert fulfilment.count("ShipmentInTransit") == 2  # the late one is published too, marked superseded
    refunds = await eventually(
        lambda: system.envelopes(topics.PAYMENTS_EVENTS, order_id),
        lambda events: any(e["type"] == "PaymentRefunded" for e in events),
    )
    assert [e["payload"]["amount_minor"] for e in refunds if e["type"] == "PaymentRefunded"] == [PRICE]
    await system.wait_for_stock(sku, {WH_A: (0, 0), WH_B: (0, 0)})


async def test_nothing_found_after_capture_refunds_releases_and_cancels(system: System) -> None:
    sku = unique_sku()
    await manual_stock(system, sku, {WH_A: 4})
    order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse:
        shipment = (await shipments_by_warehouse(warehouse, order_id, 1))[WH_A]
        await post_json(warehouse, f"/shipments/{shipment['shipment_id']}/picking")
        result = await post_json(warehouse, f"/shipments/{shipment['shipment_id']}/picks", {"lines": []})
    assert result["status"] == "failed"

    order = await system.wait_for_status(order_id, {"cancelled", "needs_attention"})
    assert order["status"] == "cancelled"
    events = timeline_events(order)
    assert events[-4:] == ["OrderFulfilmentFailed", "OrderPaymentRefunded", "OrderStockReleased", "OrderCancelled"]
    # The authorisation before the capture is payment-service's own step: not what this test is about.
    payments = [e for e in await system.envelopes(topics.PAYMENTS_EVENTS, order_id) if e["type"] != "PaymentAuthorised"]
    assert [e["type"] for e in payments] == ["PaymentCaptured", "PaymentRefunded"]
    assert payments[1]["payload"]["amount_minor"] == 2 * PRICE
    # Refund before release: the saga undoes in reverse order.
    commands = [e["type"] for e in await system.envelopes(topics.INVENTORY_COMMANDS, order_id)]
    assert commands == ["ReserveStock", "ReleaseStock"]
    await system.wait_for_stock(sku, {WH_A: (4, 0)})


async def test_a_cancel_once_fulfilment_started_stops_the_shipments_and_undoes_the_rest(system: System) -> None:
    sku = unique_sku()
    await manual_stock(system, sku, {WH_A: 3, WH_B: 3})
    order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse, system.http() as orders:
        [shipment] = (await shipments_by_warehouse(warehouse, order_id, 1)).values()
        await post_json(warehouse, f"/shipments/{shipment['shipment_id']}/picking")
        response = await orders.post(f"/orders/{order_id}/cancel", json={"reason": "changed my mind"})
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "cancelling"
        order = await system.wait_for_status(order_id, {"cancelled", "needs_attention"})
        assert order["status"] == "cancelled"
        stopped = await get_json(warehouse, f"/shipments/{shipment['shipment_id']}")
        assert stopped["status"] == "cancelled"
        too_late = await warehouse.post(f"/shipments/{shipment['shipment_id']}/picks", json={"lines": []})
        assert too_late.status_code == 409
    # The shipment's own progress (picking, cancelled) may interleave with the cancel: left out here.
    assert [e for e in timeline_events(order) if e != "OrderShipmentUpdated"][-5:] == [
        "OrderCancellationRequested",
        "OrderFulfilmentCancelled",
        "OrderPaymentRefunded",
        "OrderStockReleased",
        "OrderCancelled",
    ]
    async with system.http() as orders:
        tracking = await get_json(orders, f"/orders/{order_id}/tracking")
    assert [(p["shipment_id"], p["status"]) for p in tracking["preparing"]] == [(shipment["shipment_id"], "cancelled")]
    fulfilment = [e["type"] for e in await system.envelopes(topics.FULFILMENT_EVENTS, order_id)]
    assert fulfilment[-2:] == ["ShipmentCancelled", "FulfilmentCancelled"]
    payments = [e["type"] for e in await system.envelopes(topics.PAYMENTS_EVENTS, order_id)]
    assert payments == ["PaymentAuthorised", "PaymentCaptured", "PaymentRefunded"]
    levels = await system.stock(sku)
    await system.wait_for_stock(sku, {wh: (on_hand, 0) for wh, (on_hand, _) in levels.items()})


async def test_a_partially_shipped_order_can_no_longer_be_cancelled(system: System) -> None:
    sku = unique_sku()
    await manual_stock(system, sku, {WH_A: 1, WH_B: 1})
    order_id = (await system.place_order([(sku, 2, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse, system.http() as orders:
        shipments = await shipments_by_warehouse(warehouse, order_id, 2)
        await pick_pack_ship(warehouse, shipments[WH_A])
        await system.wait_for_status(order_id, {"partially_shipped"})
        refused = await orders.post(f"/orders/{order_id}/cancel", json={"reason": "too late"})
        assert refused.status_code == 409
        assert refused.json()["error"] == "cancel_not_allowed"
        # The rest of the order goes on.
        await pick_pack_ship(warehouse, shipments[WH_B])
    await system.wait_for_status(order_id, {"shipped"})


async def _delivered_order(system: System, lines: list[tuple[str, int, int]]) -> tuple[str, str]:
    """An order shipped from manual warehouse A and delivered; its id and tracking token."""
    placed = (await system.place_order(lines)).json()
    order_id, token = placed["order_id"], placed["tracking_token"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with (
        system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse,
        system.http(CARRIER_KEY, service="fulfilment-service") as carrier,
        system.http(None) as customer,
    ):
        shipped = await pick_pack_ship(warehouse, (await shipments_by_warehouse(warehouse, order_id, 1))[WH_A])
        body = {
            "tracking_number": shipped["tracking_number"],
            "status": "delivered",
            "occurred_at": "2026-03-05T11:00:00Z",
        }
        await post_json(carrier, f"/carriers/{shipped['carrier']}/updates", body)
        await eventually(
            lambda: get_json(customer, f"/orders/{order_id}/tracking?token={token}"), lambda t: t["delivered"] is True
        )
    return order_id, token


async def test_a_customer_returns_the_whole_order(system: System) -> None:
    mug, shirt = unique_sku(), unique_sku()
    await manual_stock(system, mug, {WH_A: 5})
    await manual_stock(system, shirt, {WH_A: 5})
    order_id, token = await _delivered_order(system, [(mug, 2, PRICE), (shirt, 1, 2 * PRICE)])

    async with system.http(None) as customer:
        nobody = await customer.post(
            f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 1}], "reason": "x"}
        )
        assert nobody.status_code == 404
        response = await customer.post(
            f"/orders/{order_id}/returns?token={token}",
            json={"lines": [{"sku": mug, "quantity": 2}, {"sku": shirt, "quantity": 1}], "reason": "does not fit"},
        )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert sorted((line["sku"], line["warehouse_id"], line["quantity"]) for line in accepted["lines"]) == sorted(
        [(mug, WH_A, 2), (shirt, WH_A, 1)]
    )
    return_id = accepted["return_id"]
    # The mugs can be sold again; the shirt came back stained.
    await receive_and_inspect(system, return_id, [{"sku": mug, "warehouse_id": WH_A, "sellable": 2}])

    returned = await return_of(system, order_id, return_id, lambda r: r["refunded"])
    assert (returned["refund_minor"], returned["requested_by"]) == (4 * PRICE, "customer")
    payments = await system.envelopes(topics.PAYMENTS_EVENTS, order_id)
    assert [(e["type"], e["payload"].get("amount_minor")) for e in payments] == [
        ("PaymentAuthorised", 4 * PRICE),
        ("PaymentCaptured", 4 * PRICE),
        ("PaymentRefunded", 4 * PRICE),
    ]
    [restock] = [e for e in await system.envelopes(topics.INVENTORY_COMMANDS, order_id) if e["type"] == "RestockItems"]
    assert restock["payload"]["return_id"] == return_id
    assert restock["payload"]["lines"] == [{"sku": mug, "warehouse_id": WH_A, "quantity": 2}]
    returned = await return_of(system, order_id, return_id, lambda r: r["status"] == "completed")
    assert returned["restocked"] is True
    [mail] = await eventually(lambda: _mails(system, order_id, "order_refunded"), lambda found: len(found) == 1)
    text = mail.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert "we have received the items you sent back" in text
    assert f"  2 x {mug}\n" in text
    assert f"  1 x {shirt}\n" in text
    await system.wait_for_stock(mug, {WH_A: (5, 0)})
    await system.wait_for_stock(shirt, {WH_A: (4, 0)})


async def test_ops_return_part_of_an_order_and_the_rest_stays_returnable(system: System) -> None:
    sku = unique_sku()
    await manual_stock(system, sku, {WH_A: 5})
    order_id, _ = await _delivered_order(system, [(sku, 3, PRICE)])
    async with system.http() as ops:
        response = await ops.post(
            f"/orders/{order_id}/returns", json={"lines": [{"sku": sku, "quantity": 1}], "reason": "one too many"}
        )
        assert response.status_code == 202, response.text
        return_id = response.json()["return_id"]
        too_many = await ops.post(
            f"/orders/{order_id}/returns", json={"lines": [{"sku": sku, "quantity": 3}], "reason": "all of them"}
        )
        assert (too_many.status_code, too_many.json()["error"]) == (409, "return_not_allowed")
        unknown = await ops.post(
            f"/orders/{order_id}/returns", json={"lines": [{"sku": "SKU-NEVER-ORDERED", "quantity": 1}], "reason": "x"}
        )
        assert unknown.status_code == 409
    await receive_and_inspect(system, return_id, [{"sku": sku, "warehouse_id": WH_A, "sellable": 1}])

    returned = await return_of(system, order_id, return_id, lambda r: r["refunded"])
    assert (returned["refund_minor"], returned["requested_by"]) == (PRICE, "it-ops")
    refunds = [e for e in await system.envelopes(topics.PAYMENTS_EVENTS, order_id) if e["type"] == "PaymentRefunded"]
    assert [e["payload"]["amount_minor"] for e in refunds] == [PRICE]
    restocks = [e for e in await system.envelopes(topics.INVENTORY_COMMANDS, order_id) if e["type"] == "RestockItems"]
    assert [e["payload"]["lines"] for e in restocks] == [[{"sku": sku, "warehouse_id": WH_A, "quantity": 1}]]
    order = await system.order(order_id)
    assert order["status"] == "shipped"
    assert "OrderReturnRefunded" in timeline_events(order)
    await return_of(system, order_id, return_id, lambda r: r["status"] == "completed")
    await system.wait_for_stock(sku, {WH_A: (3, 0)})


async def test_a_refused_short_ship_refund_waits_for_ops_while_the_order_ships(system: System) -> None:
    sku = unique_sku()
    await manual_stock(system, sku, {WH_A: 3})
    # The gateway refuses the first refund of this payment.
    placed = await system.place_order([(sku, 3, PRICE)], token="tok_refund_refused_once")
    order_id = placed.json()["order_id"]
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse, system.http() as ops:
        shipment = (await shipments_by_warehouse(warehouse, order_id, 1))[WH_A]
        sid = shipment["shipment_id"]
        await post_json(warehouse, f"/shipments/{sid}/picking")
        await post_json(warehouse, f"/shipments/{sid}/picks", {"lines": [{"sku": sku, "quantity": 2}]})

        order = await eventually(
            lambda: system.order(order_id, ops), lambda o: any(r["status"] == "failed" for r in o["refunds"])
        )
        [refund] = order["refunds"]
        assert (refund["amount_minor"], refund["failure_code"]) == (PRICE, "refund_declined")
        assert order["status"] == "confirmed", "only the refund waits for an operator, not the order"
        stuck = await get_json(ops, "/orders/stuck?older_than_s=3600")
        [listed] = [s for s in stuck["orders"] if s["order_id"] == order_id]
        assert listed["reason"] == "refund_failed"
        assert [f["refund"] for f in listed["failed_refunds"]] == [refund["refund"]]

        # The warehouse goes on, and its Shipped is applied.
        await post_json(warehouse, f"/shipments/{sid}/pack", {"parcels": [PARCEL]})
        await post_json(warehouse, f"/shipments/{sid}/ship")
        await system.wait_for_status(order_id, {"shipped"})

        response = await ops.post(
            f"/orders/{order_id}/actions",
            json={"action": "retry", "operator": "ops-anna", "note": "processor fixed", "refund": refund["refund"]},
        )
        assert response.status_code == 202, response.text
        order = await eventually(lambda: system.order(order_id, ops), lambda o: o["refunds"][0]["status"] == "refunded")
        assert order["status"] == "shipped"
        events = timeline_events(order)
        assert events.index("OrderRefundFailed") < events.index("OrderRefundActionTaken")
        assert events[-1] == "OrderShortShipRefunded"
        stuck = await get_json(ops, "/orders/stuck?older_than_s=3600")
        assert order_id not in {s["order_id"] for s in stuck["orders"]}
        again = await ops.post(
            f"/orders/{order_id}/actions", json={"action": "skip", "operator": "ops-anna", "note": "x"}
        )
        assert (again.status_code, again.json()["error"]) == (409, "action_not_allowed")
    payments = [e for e in await system.envelopes(topics.PAYMENTS_EVENTS, order_id) if "Refund" in e["type"]]
    assert [(e["type"], e["payload"]["amount_minor"]) for e in payments] == [
        ("PaymentRefundFailed", PRICE),
        ("PaymentRefunded", PRICE),
    ]

    # The customer hears about the refund, and why.
    [mail] = await eventually(lambda: _mails(system, order_id, "order_refunded"), lambda found: len(found) == 1)
    text = mail.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert "we could not ship some items of your order" in text
    assert f"Items not shipped:\n  1 x {sku}\n" in text
    assert "EUR 12.50" in text
