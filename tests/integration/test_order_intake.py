"""Orders submitted on the intake topic: placed like POST /orders, deduplicated with it, rejected by field."""

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

from harness import System, eventually, order_body, unique_sku
from oms_events import Envelope, default_registry, topics
from oms_events.messages import SubmitOrder
from oms_events.values import order_id_for
from oms_runtime.messaging import redact_secrets

PRICE = 1_250
registry = default_registry()


def submission(sku: str, quantity: int = 1, *, channel: str = "marketplace") -> Envelope:
    body = order_body([(sku, quantity, PRICE)], channel=channel, reference=f"MP-{uuid4().hex[:12]}")
    order_id = order_id_for(body["channel"], body["external_reference"])
    return registry.wrap(SubmitOrder.model_validate({**body, "order_id": order_id}), producer="upstream-test")


async def submit(system: System, envelope: Envelope | bytes, key: str) -> None:
    value = envelope if isinstance(envelope, bytes) else envelope.to_bytes()
    await system.publish(topics.ORDERS_INTAKE, value, key=key)


async def placed(system: System, order_id: UUID | str, statuses: set[str], timeout_s: float = 60.0) -> dict[str, Any]:
    """The order once it exists and is in one of the statuses (404 until the intake consumer placed it)."""

    async def probe() -> dict[str, Any] | None:
        async with system.http() as http:
            response = await http.get(f"/orders/{order_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    found = await eventually(probe, lambda o: o is not None and o["status"] in statuses, timeout_s=timeout_s)
    assert found is not None
    return found


def order_placed_count(envelopes: list[dict[str, Any]]) -> int:
    return sum(1 for e in envelopes if e["type"] == "OrderPlaced")


async def test_a_submission_on_the_intake_topic_is_placed_and_shipped(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})
    envelope = submission(sku, 2)
    await submit(system, envelope, envelope.correlation_id)

    order = await placed(system, envelope.correlation_id, {"shipped"})
    assert order["order_id"] == envelope.correlation_id
    assert order["channel"] == "marketplace"
    assert order["external_reference"] == envelope.payload["external_reference"]
    assert order["total_minor"] == 2 * PRICE
    first = (await system.envelopes(topics.ORDERS_EVENTS, envelope.correlation_id))[0]
    assert first["type"] == "OrderPlaced"
    assert first["causation_id"] == str(envelope.event_id), "the order is caused by the submission"
    await system.wait_for_stock(sku, {"WH-BER": (8, 0)})


async def test_the_same_submission_twice_and_then_over_http_is_one_order(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})
    first = submission(sku)
    # Submitted again by the upstream system: a new message (new event id), the same channel + reference.
    again = registry.wrap(registry.decode(first), producer="upstream-test")
    assert again.event_id != first.event_id
    await submit(system, first, first.correlation_id)
    await submit(system, again, again.correlation_id)
    order_id = first.correlation_id
    await placed(system, order_id, {"shipped"})

    payload = first.payload
    response = await system.place_order(
        [(sku, 1, PRICE)], channel=payload["channel"], reference=payload["external_reference"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["order_id"] == order_id

    await asyncio.sleep(1.0)  # give a second placement every chance to show
    assert order_placed_count(await system.envelopes(topics.ORDERS_EVENTS, order_id)) == 1
    order = await system.order(order_id)
    assert [t["event"] for t in order["timeline"]].count("OrderPlaced") == 1
    await system.wait_for_stock(sku, {"WH-BER": (9, 0)})


async def test_an_order_placed_over_http_first_is_not_placed_again_from_intake(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})
    envelope = submission(sku)
    payload = envelope.payload
    response = await system.place_order(
        [(sku, 1, PRICE)], channel=payload["channel"], reference=payload["external_reference"]
    )
    assert response.status_code == 201, response.text
    http_order_id = response.json()["order_id"]
    assert http_order_id == envelope.correlation_id, "both paths derive the same id from channel + reference"
    await submit(system, envelope, envelope.correlation_id)

    # A valid submission after it, on the same partition, proves the first one was consumed.
    marker = submission(sku)
    await submit(system, marker, envelope.correlation_id)
    await placed(system, marker.correlation_id, {"shipped"})
    assert order_placed_count(await system.envelopes(topics.ORDERS_EVENTS, http_order_id)) == 1


async def test_an_invalid_submission_is_rejected_by_field_dead_lettered_and_the_consumer_goes_on(
    system: System,
) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})
    envelope = submission(sku)
    order_id = envelope.correlation_id
    data = json.loads(envelope.to_bytes())
    data["payload"]["lines"][0]["quantity"] = 0
    del data["payload"]["customer"]["email"]
    invalid = json.dumps(data).encode()
    await submit(system, invalid, order_id)
    valid = submission(sku)
    await submit(system, valid, order_id)  # the same partition: after the invalid one

    rejections = await eventually(
        lambda: system.envelopes(topics.ORDERS_EVENTS, order_id),
        lambda found: any(e["type"] == "OrderIntakeRejected" for e in found),
        timeout_s=30,
    )
    [rejected] = [e for e in rejections if e["type"] == "OrderIntakeRejected"]
    assert rejected["causation_id"] == str(envelope.event_id)
    body = rejected["payload"]
    assert body["order_id"] == order_id
    assert body["channel"] == "marketplace"
    assert body["external_reference"] == envelope.payload["external_reference"]
    assert {e["field"] for e in body["errors"]} == {"lines.0.quantity", "customer.email"}
    assert order_placed_count(rejections) == 0

    dead = await eventually(
        lambda: system.records(topics.dead_letter_topic("order-service"), order_id), lambda r: len(r) >= 1
    )
    # The submission's bytes, its payment token redacted (a dead letter holds no token).
    [record] = [r for r in dead if r.value == redact_secrets(invalid)[0]]
    assert envelope.payload["payment_token"].encode() not in record.value
    headers = dict(record.headers)
    assert headers["dlq.redacted"] == b"payment_token"
    assert headers["dlq.source_topic"] == topics.ORDERS_INTAKE.encode()
    assert headers["dlq.consumer"] == b"order-service"
    assert b"lines.0.quantity" in headers["dlq.reason"]
    assert b"customer.email" in headers["dlq.reason"]

    await placed(system, valid.correlation_id, {"shipped"})
    async with system.http() as http:
        assert (await http.get(f"/orders/{order_id}")).status_code == 404, "nothing placed for the invalid one"


async def test_unreadable_bytes_on_the_intake_topic_are_only_dead_lettered(system: System) -> None:
    key = f"junk-{uuid4().hex}"
    junk = f'{{"not json {key}'.encode()
    await submit(system, junk, key)
    dead = await eventually(
        lambda: system.records(topics.dead_letter_topic("order-service"), key), lambda r: len(r) >= 1
    )
    assert [r.value for r in dead] == [junk]
    assert b"invalid envelope" in dict(dead[0].headers)["dlq.reason"]
