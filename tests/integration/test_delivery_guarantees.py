"""Nothing lost, nothing doubled: redelivery, poison messages, contention and restarts."""

import asyncio
import json
from uuid import uuid4

from harness import System, eventually, unique_sku
from oms_events import default_registry, topics
from oms_events.messages import ReserveStock
from oms_events.values import StockLine

PRICE = 1_250
FINAL = {"shipped", "rejected"}


async def test_a_command_delivered_twice_has_exactly_one_effect(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})
    order_id = (await system.place_order([(sku, 3, PRICE)])).json()["order_id"]
    await system.wait_for_status(order_id, FINAL)
    await system.wait_for_stock(sku, {"WH-BER": (7, 0)})

    # The very same ReserveStock record, delivered again (e.g. after a lost offset commit).
    [original] = await system.records(topics.INVENTORY_COMMANDS, order_id)
    await system.publish(topics.INVENTORY_COMMANDS, original.value, key=order_id)
    # The same command re-sent by the saga with a new message id: answered again, reserved once.
    registry = default_registry()
    resent = registry.wrap(ReserveStock(order_id=order_id, lines=[StockLine(sku=sku, quantity=3)]), producer="test")
    await system.publish(topics.INVENTORY_COMMANDS, resent.to_bytes(), key=order_id)

    answers = await eventually(
        lambda: system.envelopes(topics.INVENTORY_EVENTS, order_id), lambda found: len(found) >= 2, timeout_s=30
    )
    assert [a["type"] for a in answers] == ["StockReserved", "StockReserved"]
    assert answers[1]["causation_id"] == str(resent.event_id)
    assert answers[0]["payload"]["reservation_id"] == answers[1]["payload"]["reservation_id"]
    await asyncio.sleep(1.0)  # give the duplicate every chance to show an effect
    assert len(await system.envelopes(topics.INVENTORY_EVENTS, order_id)) == 2
    assert await system.stock(sku) == {"WH-BER": (7, 0)}
    order = await system.order(order_id)
    assert order["status"] == "shipped"
    assert len(order["timeline"]) == 4


async def test_poison_messages_are_dead_lettered_with_their_reason_and_the_next_message_is_processed(
    system: System,
) -> None:
    marker = uuid4().hex
    bad_json = f'{{"not json {marker}'.encode()
    unknown = json.dumps(
        {"type": "TeleportOrder", "schema_version": 1, "producer": marker, "correlation_id": marker, "payload": {}}
    ).encode()
    invalid = default_registry().wrap(
        ReserveStock(order_id=uuid4(), lines=[StockLine(sku="SKU-X", quantity=1)]), producer=marker
    )
    broken = json.loads(invalid.to_bytes())
    broken["payload"]["lines"][0]["quantity"] = -4
    invalid_bytes = json.dumps(broken).encode()
    for value in (bad_json, unknown, invalid_bytes):
        await system.publish(topics.INVENTORY_COMMANDS, value, key=marker)

    sku = unique_sku()
    await system.set_stock(sku, {"WH-LON": 2})
    order_id = (await system.place_order([(sku, 1, PRICE)])).json()["order_id"]
    assert (await system.wait_for_status(order_id, FINAL))["status"] == "shipped"

    dead = await eventually(
        lambda: system.records(topics.dead_letter_topic("inventory-service"), marker), lambda r: len(r) >= 3
    )
    by_value = {r.value: dict(r.headers) for r in dead}
    assert set(by_value) == {bad_json, unknown, invalid_bytes}, "the original bytes are kept"
    assert b"invalid envelope" in by_value[bad_json]["dlq.reason"]
    assert b"unknown message type 'TeleportOrder'" in by_value[unknown]["dlq.reason"]
    assert b"lines.0.quantity" in by_value[invalid_bytes]["dlq.reason"]
    for headers in by_value.values():
        assert headers["dlq.source_topic"] == topics.INVENTORY_COMMANDS.encode()
        assert headers["dlq.consumer"] == b"inventory-service"


async def test_twenty_concurrent_orders_for_five_units_sell_exactly_five(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 3, "WH-LON": 2})

    async with system.http() as http:
        responses = await asyncio.gather(*(system.place_order([(sku, 1, PRICE)], client=http) for _ in range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    order_ids = [r.json()["order_id"] for r in responses]

    finals = await asyncio.gather(*(system.wait_for_status(o, FINAL, timeout_s=90) for o in order_ids))
    statuses = [o["status"] for o in finals]
    assert statuses.count("shipped") == 5, statuses
    assert statuses.count("rejected") == 15, statuses
    await system.wait_for_stock(sku, {"WH-BER": (0, 0), "WH-LON": (0, 0)})


async def test_orders_in_flight_survive_kill_9_of_order_and_inventory_services(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 50})
    order_service = system.services["order-service"]
    inventory = system.services["inventory-service"]

    async with system.http() as http:
        responses = [await system.place_order([(sku, 1, PRICE)], client=http) for _ in range(10)]
    order_ids = [r.json()["order_id"] for r in responses]
    inventory.kill()
    order_service.kill()
    await asyncio.sleep(1.0)
    inventory.start()
    order_service.start()
    await asyncio.gather(order_service.wait_started(), inventory.wait_started())

    finals = await asyncio.gather(*(system.wait_for_status(o, FINAL, timeout_s=120) for o in order_ids))
    assert [o["status"] for o in finals] == ["shipped"] * 10
    for order in finals:
        assert [t["event"] for t in order["timeline"]] == [
            "OrderPlaced",
            "OrderStockReserved",
            "OrderConfirmed",
            "OrderShipped",
        ]
    await system.wait_for_stock(sku, {"WH-BER": (40, 0)})


async def test_http_idempotency_key_and_channel_reference_return_the_same_order(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    key = str(uuid4())
    reference = f"WEB-{uuid4().hex[:8]}"
    first = await system.place_order([(sku, 1, PRICE)], reference=reference, idempotency_key=key)
    again = await system.place_order([(sku, 1, PRICE)], reference=reference, idempotency_key=key)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["order_id"] == first.json()["order_id"]

    # Same channel + external reference without a key: still the same order.
    resubmitted = await system.place_order([(sku, 1, PRICE)], reference=reference)
    assert resubmitted.status_code == 200
    assert resubmitted.json()["order_id"] == first.json()["order_id"]

    # The key reused for another body is refused, naming the header.
    other = await system.place_order([(sku, 2, PRICE)], reference=reference, idempotency_key=key)
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"

    await system.wait_for_status(first.json()["order_id"], FINAL)
    await system.wait_for_stock(sku, {"WH-BER": (4, 0)})


async def test_bad_input_gets_a_structured_error_naming_each_field(system: System) -> None:
    async with system.http() as http:
        response = await http.post(
            "/orders",
            json={
                "channel": "fax",
                "lines": [{"sku": "A", "quantity": 0, "unit_price_minor": 1.5}],
                "currency": "euro",
            },
        )
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "validation_failed"
        fields = {f["field"] for f in body["fields"]}
        assert {
            "channel",
            "lines.0.quantity",
            "lines.0.unit_price_minor",
            "currency",
            "customer",
            "payment_token",
        } <= fields

        broken = await http.post("/orders", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 422
        assert broken.json()["error"] == "validation_failed"

        missing = await http.get(f"/orders/{uuid4()}")
        assert missing.status_code == 404
        assert missing.json()["error"] == "order_not_found"
        not_an_id = await http.get("/orders/not-a-uuid")
        assert not_an_id.status_code == 422
        assert not_an_id.json()["fields"][0]["field"] == "order_id"


async def test_order_service_killed_again_and_again_mid_flight_resumes_every_saga(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 30, "WH-LON": 30})
    order_service = system.services["order-service"]
    async with system.http() as http:
        order_ids = [(await system.place_order([(sku, 2, PRICE)], client=http)).json()["order_id"] for _ in range(15)]
    # Kill it while replies are being handled, start it, and kill it again before it settles.
    for pause_s in (0.2, 1.5):
        await asyncio.sleep(pause_s)
        order_service.kill()
        order_service.start()
        await order_service.wait_started()

    finals = await asyncio.gather(*(system.wait_for_status(o, FINAL, timeout_s=120) for o in order_ids))
    assert [o["status"] for o in finals] == ["shipped"] * 15
    for order in finals:
        # Nothing doubled: each step recorded once, whatever was redelivered after the kills.
        assert [t["event"] for t in order["timeline"]] == [
            "OrderPlaced",
            "OrderStockReserved",
            "OrderConfirmed",
            "OrderShipped",
        ]

    def settled(levels: dict[str, tuple[int, int]]) -> bool:
        # 15 orders of 2 units left the building; nothing stays reserved.
        return sum(on_hand for on_hand, _ in levels.values()) == 60 - 30 and all(r == 0 for _, r in levels.values())

    await eventually(lambda: system.stock(sku), settled)
