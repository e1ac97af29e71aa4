"""The order saga end to end, through all five services, on the real broker, database and cache."""

import asyncio
import itertools

from harness import System, eventually, message_types, unique_sku
from oms_events import topics

PRICE = 1_999


async def test_happy_path_reaches_shipped_with_every_event_on_its_topic_in_causal_order(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})

    response = await system.place_order([(sku, 2, PRICE)])
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]

    order = await system.wait_for_status(order_id, {"shipped", "rejected"})
    assert order["status"] == "shipped"
    assert order["total_minor"] == 2 * PRICE
    [shipment] = order["shipments"]
    assert shipment["tracking_number"]
    assert shipment["carrier"]
    assert [t["event"] for t in order["timeline"]] == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderConfirmed",
        "OrderShipped",
    ]

    # Every message is on its own topic, keyed by the order id (records() filters by key).
    orders = await system.envelopes(topics.ORDERS_EVENTS, order_id)
    reserve = await system.envelopes(topics.INVENTORY_COMMANDS, order_id)
    inventory = await system.envelopes(topics.INVENTORY_EVENTS, order_id)
    capture = await system.envelopes(topics.PAYMENTS_COMMANDS, order_id)
    payments = await system.envelopes(topics.PAYMENTS_EVENTS, order_id)
    ship = await system.envelopes(topics.FULFILMENT_COMMANDS, order_id)
    fulfilment = await system.envelopes(topics.FULFILMENT_EVENTS, order_id)
    assert message_types(orders) == ["OrderPlaced", "OrderStockReserved", "OrderConfirmed", "OrderShipped"]
    assert message_types(reserve) == ["ReserveStock"]
    assert message_types(inventory) == ["StockReserved"]
    assert message_types(capture) == ["CapturePayment"]
    assert message_types(payments) == ["PaymentAuthorised", "PaymentCaptured"]
    assert message_types(ship) == ["ShipOrder"]
    # An automatic warehouse walks its shipment through every state in one commit.
    assert message_types(fulfilment) == [
        "ShipmentCreated",
        "ShipmentPickingStarted",
        "ShipmentPicked",
        "ShipmentPacked",
        "Shipped",
    ]
    shipped = fulfilment[-1]

    # Causal order: each step names the message that caused it.
    chain = [reserve[0], inventory[0], capture[0], payments[1], ship[0], shipped]
    for cause, effect in itertools.pairwise(chain):
        assert effect["causation_id"] == cause["event_id"], (cause["type"], effect["type"])
        assert effect["occurred_at"] >= cause["occurred_at"]
    assert all(e["correlation_id"] == order_id for e in [*orders, *chain])
    assert orders[-1]["causation_id"] == shipped["event_id"]

    # The stock left the warehouse: on hand down by two, nothing left reserved.
    await system.wait_for_stock(sku, {"WH-BER": (8, 0)})

    # The customer heard about it: order received, confirmed and shipped emails.
    def mails() -> list[str]:
        return [m["Subject"] for m in system.mailbox if order_id[:8].lower() in m["Subject"].lower()]

    subjects = await eventually(lambda: asyncio.sleep(0, mails()), lambda s: len(s) >= 3, timeout_s=30)
    assert len(subjects) == 3, subjects


async def test_out_of_stock_is_rejected_and_no_payment_is_attempted(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 1, "WH-LON": 1})

    response = await system.place_order([(sku, 3, PRICE)])
    order_id = response.json()["order_id"]

    order = await system.wait_for_status(order_id, {"shipped", "rejected"})
    assert order["status"] == "rejected"
    assert sku in order["rejection_reason"]
    assert message_types(await system.envelopes(topics.INVENTORY_EVENTS, order_id)) == ["StockReservationFailed"]
    assert await system.envelopes(topics.PAYMENTS_COMMANDS, order_id) == []
    assert await system.envelopes(topics.PAYMENTS_EVENTS, order_id) == []
    await system.wait_for_stock(sku, {"WH-BER": (1, 0), "WH-LON": (1, 0)})


async def test_payment_declined_releases_the_stock_and_rejects(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-LON": 4})

    response = await system.place_order([(sku, 3, PRICE)], token="tok_decline_insufficient_funds")
    order_id = response.json()["order_id"]

    order = await system.wait_for_status(order_id, {"shipped", "rejected"})
    assert order["status"] == "rejected"
    assert [t["event"] for t in order["timeline"]] == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderPaymentDeclined",
        "OrderStockReleased",
        "OrderRejected",
    ]
    assert message_types(await system.envelopes(topics.INVENTORY_EVENTS, order_id)) == [
        "StockReserved",
        "StockReleased",
    ]
    assert message_types(await system.envelopes(topics.PAYMENTS_EVENTS, order_id)) == ["PaymentDeclined"]
    assert await system.envelopes(topics.FULFILMENT_COMMANDS, order_id) == []
    await system.wait_for_stock(sku, {"WH-LON": (4, 0)})


async def test_an_order_no_single_warehouse_can_serve_ships_in_two_shipments(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 3, "WH-LON": 2})

    order_id = (await system.place_order([(sku, 5, PRICE)])).json()["order_id"]
    order = await system.wait_for_status(order_id, {"shipped", "rejected"})

    assert order["status"] == "shipped"
    assert sorted(s["warehouse_id"] for s in order["shipments"]) == ["WH-BER", "WH-LON"]
    events = [t["event"] for t in order["timeline"]]
    assert events == ["OrderPlaced", "OrderStockReserved", "OrderConfirmed", "OrderShipped", "OrderShipped"]
    [reserved] = [e for e in await system.envelopes(topics.INVENTORY_EVENTS, order_id) if e["type"] == "StockReserved"]
    split = {(a["warehouse_id"], a["quantity"]) for a in reserved["payload"]["allocations"]}
    assert split == {("WH-BER", 3), ("WH-LON", 2)}
    shipped = [e for e in await system.envelopes(topics.FULFILMENT_EVENTS, order_id) if e["type"] == "Shipped"]
    assert len(shipped) == 2
    await system.wait_for_stock(sku, {"WH-BER": (0, 0), "WH-LON": (0, 0)})
