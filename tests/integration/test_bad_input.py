"""Bad input against the running system: refused by field before any database sees it, on connections
that stay usable, from clients with and without credentials (issue 13's findings, each one)."""

import asyncio
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

from harness import OPS_KEY, System, eventually, order_body, unique_sku
from oms_events import default_registry, topics
from oms_events.messages import SubmitOrder
from oms_events.values import order_id_for
from oms_runtime.testing_http import named_fields

PRICE = 990


def _connection(system: System, service: str = "order-service") -> http.client.HTTPConnection:
    url = urlsplit(system.http_urls[service])
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)


def _send(
    connection: http.client.HTTPConnection, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    connection.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")


async def test_nul_in_an_order_is_422_naming_the_field_and_the_connection_goes_on(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    good = order_body([(sku, 1, PRICE)])
    connection = _connection(system)
    try:
        status, first = await asyncio.to_thread(
            _send,
            connection,
            "POST",
            "/orders",
            {**good, "customer": {**good["customer"], "name": "Ja\x00ne"}},
            OPS_KEY,
        )
        assert (status, [f["field"] for f in first["fields"]]) == (422, ["customer.name"])
        socket = connection.sock
        for field, value in [("external_reference", "EXT\x00"), ("payment_token", "tok_\x00")]:
            status, refused = await asyncio.to_thread(
                _send, connection, "POST", "/orders", {**good, field: value}, OPS_KEY
            )
            assert (status, [f["field"] for f in refused["fields"]]) == (422, [field])
        huge = {**good, "lines": [{"sku": sku, "quantity": 2, "unit_price_minor": 2**62}]}
        status, refused = await asyncio.to_thread(_send, connection, "POST", "/orders", huge, OPS_KEY)
        assert (status, [f["field"] for f in refused["fields"]]) == (422, ["lines.0.unit_price_minor"])
        status, placed = await asyncio.to_thread(_send, connection, "POST", "/orders", good, OPS_KEY)
        assert status == 201, placed
        # The same socket all along: no failed request made the service close the connection.
        assert connection.sock is socket
    finally:
        connection.close()

    # A non-ASCII tracking token for an order that exists: 404, like any wrong token (it was a 503).
    order_id, token = placed["order_id"], placed["tracking_token"]
    async with system.http(key=None) as http:
        wrong = await http.get(f"/orders/{order_id}/tracking", params={"token": "ÿé" + token[2:]})
        assert (wrong.status_code, wrong.json()["error"]) == (404, "order_not_found")
        right = await http.get(f"/orders/{order_id}/tracking", params={"token": token})
        assert right.status_code == 200


async def test_an_intake_submission_with_nul_is_rejected_by_field_not_retried(system: System) -> None:
    registry = default_registry()
    body = order_body([(unique_sku(), 1, PRICE)], channel="marketplace", reference=f"MP-{uuid4().hex[:12]}")
    order_id = order_id_for(body["channel"], body["external_reference"])
    envelope = registry.wrap(SubmitOrder.model_validate({**body, "order_id": order_id}), producer="upstream-test")
    data = json.loads(envelope.to_bytes())
    data["payload"]["shipping_address"]["line1"] = "Main\x00 1"
    await system.publish(topics.ORDERS_INTAKE, json.dumps(data).encode(), key=str(order_id))
    found = await eventually(
        lambda: system.envelopes(topics.ORDERS_EVENTS, str(order_id)),
        lambda events: any(e["type"] == "OrderIntakeRejected" for e in events),
        timeout_s=30,
    )
    [rejected] = [e for e in found if e["type"] == "OrderIntakeRejected"]
    assert [e["field"] for e in rejected["payload"]["errors"]] == ["shipping_address.line1"]


async def test_numbers_and_days_past_their_columns_are_422_on_every_service(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    async with system.http(service="inventory-service") as inventory:
        adjust = {"sku": sku, "warehouse_id": "WH-BER", "quantity_change": 2**31, "reason": "count"}
        assert named_fields(await inventory.post("/stock/adjustments", json=adjust)) == ["quantity_change"]
        receive = await inventory.post(f"/purchase-orders/{uuid4()}/receive", json={"quantity": 2**63})
        assert named_fields(receive) == ["quantity"]
        forecast = await inventory.get(f"/skus/{sku}/forecast", params={"through": "0001-01-01"})
        assert named_fields(forecast) == ["through"]
        warehouse = await inventory.put("/warehouses/WH-BER", json={"name": "Ber\x00lin", "location": "Berlin"})
        assert named_fields(warehouse) == ["name"]
        assert (await inventory.get(f"/stock/{sku}")).status_code == 200
    async with system.http(service="payment-service") as payment:
        assert named_fields(await payment.get("/reconciliation", params={"date_from": "0001-01-01"})) == ["date_from"]
    async with system.http(service="fulfilment-service") as fulfilment:
        update = {"tracking_number": "JD0\x001", "status": "in_transit", "occurred_at": "2026-03-01T10:00:00Z"}
        assert named_fields(await fulfilment.post("/carriers/dhl/updates", json=update)) == ["tracking_number"]
        update = {"tracking_number": "JD01", "status": "in_transit", "occurred_at": "0001-01-01T00:00:00+05:00"}
        assert named_fields(await fulfilment.post("/carriers/dhl/updates", json=update)) == ["occurred_at"]
    async with system.http(service="notification-service") as notification:
        assert named_fields(await notification.get("/customers/c%001/preferences")) == ["customer_id"]


async def _post_large_body(base_url: str, path: str, body: bytes) -> bytes:
    """Sends the headers and the first 64 KiB of a large body, then reads the status line: a client that
    waits for an answer before sending the rest (as `Expect: 100-continue` clients do)."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: oms\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[: 64 * 1024])
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_a_large_unauthenticated_body_is_refused_at_once_and_probes_keep_answering(system: System) -> None:
    # 10 MB of 400,000 keys held notification-service for 86 s before; now its length alone refuses it.
    body = json.dumps({f"k{i}": i for i in range(400_000)}).encode()
    base_url = system.http_urls["notification-service"]
    async with system.http(key=None, service="notification-service") as client:
        started = time.monotonic()
        status_line, live = await asyncio.gather(
            _post_large_body(base_url, "/customers/c-1/preferences", body), client.get("/health/live")
        )
        assert time.monotonic() - started < 10
        assert status_line.startswith(b"HTTP/1.1 413"), status_line
        assert live.status_code == 200
        # Small but unauthenticated: 401 without a word about the body the route expects.
        small = await client.put("/customers/c-1/preferences", json={"locale": 42})
        assert (small.status_code, small.json()["fields"]) == (401, [])
