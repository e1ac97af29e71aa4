"""Operability of every service: probes, metrics, and SIGTERM under load losing and doubling nothing."""

import asyncio
import re
import time
from collections import Counter
from typing import Any
from uuid import uuid4

import httpx

from harness import SERVICES, System, order_body, unique_sku
from oms_events import topics

PRICE = 990
FINAL = {"shipped", "rejected", "cancelled"}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if head.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


async def scrape(system: System, service: str) -> str:
    async with system.http(None, service=service) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_every_service_is_live_and_ready_with_broker_database_and_cache(system: System) -> None:
    for service in SERVICES:
        async with system.http(None, service=service) as http:
            live = await http.get("/health/live")
            ready = await http.get("/health/ready")
        assert live.status_code == 200, service
        assert ready.status_code == 200, (service, ready.text)
        assert ready.json()["problems"] == {}
        assert ready.json()["service"] == service


async def test_metrics_of_every_service_move_when_an_order_flows(system: System) -> None:
    before = {service: await scrape(system, service) for service in SERVICES}
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    response = await system.place_order([(sku, 1, PRICE)])
    assert response.status_code == 201
    order_id = response.json()["order_id"]
    assert (await system.wait_for_status(order_id, FINAL))["status"] == "shipped"
    await asyncio.sleep(0.5)  # the last replies' counters move just after the order's status
    after = {service: await scrape(system, service) for service in SERVICES}

    def moved(service: str, name: str, **labels: str) -> float:
        return metric(after[service], name, **labels) - metric(before[service], name, **labels)

    order, inventory = "order-service", "inventory-service"
    assert moved(order, "oms_http_requests_total", method="POST", route="/orders", status="201") == 1
    assert moved(order, "oms_http_requests_total", method="GET", route="/orders/{order_id}", status="200") >= 1
    assert moved(order, "oms_messages_produced_total", topic=topics.INVENTORY_COMMANDS, type="ReserveStock") == 1
    assert moved(order, "oms_messages_produced_total", topic=topics.ORDERS_EVENTS, type="OrderPlaced") == 1
    processed = {"consumer": order, "topic": topics.INVENTORY_EVENTS, "type": "StockReserved"}
    assert moved(order, "oms_messages_consumed_total", **processed, outcome="processed") == 1
    assert moved(order, "oms_handler_duration_seconds_count", consumer=order, type="StockReserved") == 1
    assert moved(order, "oms_saga_steps_total", step="ReserveStock", outcome="StockReserved") == 1
    assert moved(order, "oms_saga_steps_total", step="CapturePayment", outcome="PaymentCaptured") == 1
    assert moved(order, "oms_saga_step_duration_seconds_count", step="ShipOrder", outcome="Shipped") == 1
    reserve = {"consumer": inventory, "topic": topics.INVENTORY_COMMANDS, "type": "ReserveStock"}
    assert moved(inventory, "oms_messages_consumed_total", **reserve, outcome="processed") == 1
    assert moved(inventory, "oms_messages_produced_total", topic=topics.INVENTORY_EVENTS, type="StockReserved") == 1
    assert moved("payment-service", "oms_messages_produced_total", topic=topics.PAYMENTS_EVENTS) >= 1
    assert moved("fulfilment-service", "oms_messages_produced_total", topic=topics.FULFILMENT_EVENTS) >= 1
    for service in SERVICES:
        assert "oms_outbox_lag_seconds" in after[service]
        assert re.search(rf'oms_consumer_lag_messages\{{group="{service}"', after[service]), service


async def test_a_poison_message_moves_the_dead_letter_counter(system: System) -> None:
    before = metric(await scrape(system, "payment-service"), "oms_dead_letters_total", consumer="payment-service")
    await system.publish(topics.PAYMENTS_COMMANDS, b"\x00 not an envelope", key=str(uuid4()))

    async def dead_letters() -> float:
        return metric(await scrape(system, "payment-service"), "oms_dead_letters_total", consumer="payment-service")

    deadline = time.monotonic() + 20
    while await dead_letters() < before + 1:
        assert time.monotonic() < deadline, "the dead-letter counter did not move"
        await asyncio.sleep(0.2)


class Load:
    """Places orders over HTTP as an upstream system would: a retry keeps its Idempotency-Key, so an
    order-service that is restarting gets the same order again, never a second one."""

    def __init__(self, system: System, sku: str, orders: int, clients: int = 3) -> None:
        self.system = system
        self.sku = sku
        self.wanted = orders
        self.clients = clients
        self.order_ids: list[str] = []
        self.started = 0
        self.retries = 0
        self.placed_some = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(self.clients)))

    async def _client(self) -> None:
        async with self.system.http() as http:
            while self.started < self.wanted:
                self.started += 1
                self.order_ids.append(await self._place(http))
                if len(self.order_ids) >= self.wanted // 4:
                    self.placed_some.set()
                await asyncio.sleep(0.05)

    async def _place(self, http: httpx.AsyncClient) -> str:
        body = order_body([(self.sku, 1, PRICE)])
        key = str(uuid4())
        deadline = time.monotonic() + 90
        while True:
            try:
                response = await http.post("/orders", json=body, headers={"Idempotency-Key": key})
                if response.status_code in (200, 201):
                    order_id: str = response.json()["order_id"]
                    return order_id
                assert response.status_code == 503, response.text
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "order-service did not come back"
            self.retries += 1
            await asyncio.sleep(0.2)


async def test_sigterm_to_every_service_under_load_loses_and_doubles_nothing(system: System) -> None:
    sku = unique_sku()
    stock = 500
    await system.set_stock(sku, {"WH-BER": stock})
    load = Load(system, sku, orders=24)
    running = asyncio.create_task(load.run())
    await asyncio.wait_for(load.placed_some.wait(), 60)

    # All five at once, mid-flight: replies and commands are in every queue and outbox.
    async def terminate(name: str) -> tuple[str, int | None, float]:
        started = time.monotonic()
        code = await asyncio.to_thread(system.services[name].stop, 40.0)
        return name, code, time.monotonic() - started

    stopped = await asyncio.gather(*(terminate(name) for name in SERVICES))
    for service in system.services.values():
        service.start()
    await asyncio.gather(*(s.wait_started() for s in system.services.values()))
    await asyncio.wait_for(running, 120)

    for name, code, seconds in stopped:
        assert code == 0, f"{name} exited with {code} on SIGTERM:\n{system.services[name].tail()}"
        # SHUTDOWN_GRACE_S defaults to 25 s (the pods' grace period is 30 s).
        assert seconds < 25, f"{name} took {seconds:.1f}s to stop"
        log = system.services[name].log_path.read_text(errors="replace")
        assert '"message": "shutdown complete"' in log

    order_ids = load.order_ids
    assert len(set(order_ids)) == len(order_ids) == 24, "one order per submission, retries included"
    finals: dict[str, Any] = {}
    for order_id in order_ids:
        finals[order_id] = await system.wait_for_status(order_id, FINAL, timeout_s=90)
    assert {o["status"] for o in finals.values()} == {"shipped"}
    for order_id, order in finals.items():
        kinds = Counter(entry["event"] for entry in order["timeline"])
        assert all(n == 1 for n in kinds.values()), f"{order_id} has a doubled event: {kinds}"

    shipped = Counter(
        r.key.decode()
        for r in await system.records(topics.ORDERS_EVENTS)
        if r.key and r.key.decode() in finals and dict(r.headers).get("type") == b"OrderShipped"
    )
    assert shipped == dict.fromkeys(order_ids, 1), "every order reached its final state exactly once"
    # Inventory applied each reservation and shipment exactly once.
    await system.wait_for_stock(sku, {"WH-BER": (stock - len(order_ids), 0)})


async def test_one_orders_spans_share_one_trace_id_from_the_http_call_through_every_service(system: System) -> None:
    trace_id = uuid4().hex
    caller_span = uuid4().hex[:16]
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 3})
    async with system.http() as http:
        response = await http.post(
            "/orders",
            json=order_body([(sku, 1, PRICE)]),
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
    assert response.status_code == 201
    order_id = response.json()["order_id"]
    assert (await system.wait_for_status(order_id, FINAL))["status"] == "shipped"

    expected = set(SERVICES)
    steps = {"ReserveStock", "StockReserved", "CapturePayment", "PaymentCaptured", "ShipOrder", "Shipped"}

    def processed_types() -> set[str]:
        return {
            str(s.attributes["oms.message.type"])
            for s in system.traces.of_trace(trace_id)
            if s.name.endswith(" process")
        }

    def parents_missing() -> bool:
        spans = system.traces.of_trace(trace_id)
        ids = {s.span_id for s in spans}
        return any(s.parent_span_id not in ids for s in spans if s.name.endswith(" process"))

    # Each service exports its spans in batches of its own, so a span may arrive before its parent:
    # wait until the trace is whole, not only until every service has sent its first batch.
    deadline = time.monotonic() + 20
    while (
        {s.service for s in system.traces.of_trace(trace_id)} != expected
        or not processed_types() >= steps
        or parents_missing()
    ):
        assert time.monotonic() < deadline, (
            f"services in the trace: {sorted({s.service for s in system.traces.of_trace(trace_id)})}; "
            f"steps: {sorted(processed_types())}"
        )
        await asyncio.sleep(0.2)
    spans = system.traces.of_trace(trace_id)
    [server] = [s for s in spans if s.name == "POST /orders"]
    assert server.parent_span_id == caller_span, "the HTTP span continues the caller's trace"
    by_id = {s.span_id: s for s in spans}
    processed = [s for s in spans if s.name.endswith(" process")]
    assert {s.attributes["oms.message.type"] for s in processed} >= steps
    for span in processed:
        assert span.attributes["oms.order_id"] == order_id
        assert span.parent_span_id in by_id, f"{span.name} in {span.service} hangs off a span of the same trace"

    # The trace id travels in every envelope and Kafka header of the order, and in the JSON logs.
    for topic in (topics.ORDERS_EVENTS, topics.INVENTORY_COMMANDS, topics.PAYMENTS_EVENTS, topics.FULFILMENT_EVENTS):
        for record in await system.records(topic, order_id):
            assert dict(record.headers)["traceparent"].decode().split("-")[1] == trace_id, topic
    log = system.services["inventory-service"].log_path.read_text(errors="replace")
    assert f'"trace_id": "{trace_id}"' in log
