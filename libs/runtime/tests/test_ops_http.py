"""The host's operational HTTP surface: probes, metrics, and the service's own routes behind them."""

import asyncio
import os
import re
import signal
from uuid import uuid4

import httpx
import pytest
from fastapi import Depends, FastAPI
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from oms_events.messages import ReleaseStock
from oms_runtime import metrics
from oms_runtime.db import Database
from oms_runtime.host import ServiceHost, ShutdownTooSlowError
from oms_runtime.http_api import API_KEYS_ADAPTER, ApiKeyAuthenticator, ServiceApi, install_error_handlers
from oms_runtime.messaging import HandlerMap, MessageContext, Outcome
from oms_runtime.ops_http import DependencyCheck, Readiness, ops_app
from oms_runtime.settings import ServiceSettings
from oms_runtime.testing import HandlerHarness
from oms_runtime.tracing import configure_tracing, current_trace_context

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
OPS_KEY = "ops-key-0123456789"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops")  # type: ignore[arg-type]


async def no_gauges() -> None:
    return None


async def fine() -> None:
    return None


async def test_liveness_answers_without_touching_dependencies() -> None:
    async def broken() -> None:
        raise AssertionError("liveness must not check dependencies")

    app = ops_app("test-service", Readiness([DependencyCheck("database", broken)]), no_gauges)
    async with client(app) as http:
        response = await http.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "test-service"}


async def test_readiness_names_each_failed_dependency_and_answers_503() -> None:
    async def hangs() -> None:
        await asyncio.sleep(30)

    async def refuses() -> None:
        raise ConnectionRefusedError("connection refused")

    readiness = Readiness(
        [DependencyCheck("broker", hangs), DependencyCheck("database", fine), DependencyCheck("cache", refuses)],
        timeout_s=0.2,
    )
    async with client(ops_app("svc", readiness, no_gauges)) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready"
    assert set(body["problems"]) == {"broker", "cache"}
    assert "0.2s" in body["problems"]["broker"]
    assert "ConnectionRefusedError" in body["problems"]["cache"]
    assert body["checked_in_ms"] < 2000, "checks run concurrently, each bounded by the timeout"
    assert sample("oms_ready") == 0


async def test_readiness_against_real_clients_reports_what_is_unreachable(db: Database) -> None:
    unreachable = Database("postgresql+asyncpg://oms:oms@127.0.0.1:1/oms", schema="nowhere")
    no_cache = Redis.from_url("redis://127.0.0.1:1/0")
    cache = Redis.from_url(REDIS_URL)
    try:
        readiness = Readiness(
            [DependencyCheck("database", unreachable.ping), DependencyCheck("cache", no_cache.ping)], timeout_s=2.0
        )
        async with client(ops_app("svc", readiness, no_gauges)) as http:
            response = await http.get("/health/ready")
        assert response.status_code == 503
        assert sorted(response.json()["problems"]) == ["cache", "database"]

        readiness = Readiness([DependencyCheck("database", db.ping), DependencyCheck("cache", cache.ping)])
        async with client(ops_app("svc", readiness, no_gauges)) as http:
            response = await http.get("/health/ready")
        assert response.status_code == 200
        assert response.json()["problems"] == {}
        assert sample("oms_ready") == 1
    finally:
        await unreachable.dispose()
        await no_cache.aclose()
        await cache.aclose()


async def test_a_service_shutting_down_is_unready() -> None:
    readiness = Readiness([DependencyCheck("database", fine)])
    readiness.shutting_down = True
    async with client(ops_app("svc", readiness, no_gauges)) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["problems"] == {"service": "shutting down"}


async def test_the_service_app_is_served_behind_the_probes_and_counted_by_route_template() -> None:
    service_app = FastAPI()

    @service_app.get("/widgets/{widget_id}")
    async def widget(widget_id: str) -> dict[str, str]:
        return {"id": widget_id}

    # A service's own /health/ready would be shadowed by the host's (the services no longer define one).
    @service_app.get("/health/ready")
    async def own_ready() -> dict[str, str]:
        return {"status": "the service's own"}

    before = sample("oms_http_requests_total", method="GET", route="/widgets/{widget_id}", status="200")
    unmatched = sample("oms_http_requests_total", method="GET", route="unmatched", status="404")
    app = ops_app("svc", Readiness([DependencyCheck("database", fine)]), no_gauges, service_app)
    async with client(app) as http:
        assert (await http.get("/widgets/w-1")).json() == {"id": "w-1"}
        assert (await http.get("/widgets/w-2")).status_code == 200
        assert (await http.get("/no/such/path")).status_code == 404
        assert (await http.get("/health/ready")).json()["service"] == "svc"
        text = (await http.get("/metrics")).text
    assert sample("oms_http_requests_total", method="GET", route="/widgets/{widget_id}", status="200") == before + 2
    assert sample("oms_http_requests_total", method="GET", route="unmatched", status="404") == unmatched + 1
    assert "w-1" not in text, "ids never become label values"
    assert re.search(r'oms_http_request_duration_seconds_count\{method="GET",route="/widgets/\{widget_id\}"\}', text)


async def test_probes_and_metrics_need_no_key_in_front_of_a_keyed_service_app() -> None:
    auth = ApiKeyAuthenticator(API_KEYS_ADAPTER.validate_python([{"name": "ops", "key": OPS_KEY, "role": "ops"}]))
    service_app = FastAPI(dependencies=[Depends(auth.dependency(ops_only=True))])
    install_error_handlers(service_app)

    @service_app.get("/widgets")
    async def widgets() -> list[str]:
        return []

    app = ops_app("svc", Readiness([DependencyCheck("database", fine)]), no_gauges, service_app)
    async with client(app) as http:
        assert (await http.get("/widgets")).status_code == 401
        assert (await http.get("/widgets", headers={"X-API-Key": OPS_KEY})).status_code == 200
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200


async def test_every_path_that_is_not_a_probe_reaches_the_service_app_even_with_a_newline() -> None:
    service_app = FastAPI()
    install_error_handlers(service_app)

    @service_app.get("/customers/{customer_id}")
    async def customer(customer_id: str) -> dict[str, str]:
        return {"customer_id": customer_id}

    app = ops_app("svc", Readiness([DependencyCheck("database", fine)]), no_gauges, service_app)
    async with client(app) as http:
        # A Mount's pattern does not match across a newline: this was a plain-text 404 from outside the app.
        found = await http.get("/customers/a%0Ab")
        assert (found.status_code, found.json()) == (200, {"customer_id": "a\nb"})
        missing = await http.get("/no/such/path")
        assert (missing.status_code, missing.json()["error"]) == (404, "http_error")
        assert (await http.get("/health/live")).status_code == 200


async def test_metrics_count_consumed_messages_handler_latency_errors_and_refresh_gauges(db: Database) -> None:
    failures = {"left": 1}

    async def on_release(ctx: MessageContext, message: ReleaseStock) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("transient")

    handlers = HandlerMap()
    handlers.register(ReleaseStock, on_release)
    consumer = f"metrics-{uuid4().hex[:6]}"
    harness = HandlerHarness(db, consumer, handlers)
    message = ReleaseStock(order_id=uuid4(), reason="test")
    assert await harness.send(message) == Outcome.PROCESSED
    await harness.send(message, raw=b"{not json")

    refreshed: list[bool] = []

    async def refresh() -> None:
        refreshed.append(True)
        metrics.OUTBOX_LAG.set(12.5)

    async with client(ops_app("svc", Readiness([]), refresh)) as http:
        text = (await http.get("/metrics")).text
    assert refreshed == [True], "I/O gauges are refreshed for each scrape"
    assert "oms_outbox_lag_seconds 12.5" in text
    labels = {"consumer": consumer, "topic": message.topic}
    assert sample("oms_messages_consumed_total", **labels, type="ReleaseStock", outcome="processed") == 1
    assert sample("oms_messages_consumed_total", **labels, type="unreadable", outcome="dead_lettered") == 1
    assert sample("oms_handler_errors_total", consumer=consumer, type="ReleaseStock") == 1
    assert sample("oms_handler_duration_seconds_count", consumer=consumer, type="ReleaseStock") == 1


async def test_the_hosts_readiness_checks_broker_database_and_cache() -> None:
    down = ServiceSettings(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url="postgresql+asyncpg://oms:oms@127.0.0.1:1/oms",
        redis_url="redis://127.0.0.1:1/0",
        readiness_timeout_s=1.0,
    )
    up = ServiceSettings(readiness_timeout_s=2.0)
    unreachable, reachable = ServiceHost("payment-service", down), ServiceHost("payment-service", up)
    await reachable.producer.start()
    try:
        assert set(await unreachable.readiness.problems()) == {"broker", "database", "cache"}
        assert await reachable.readiness.problems() == {}
        assert reachable.http_address == ("127.0.0.1", 8002), "the service's local default port"
    finally:
        for host in (unreachable, reachable):
            await host.producer.stop()
            await host.db.dispose()
            await host._cache.aclose()


@pytest.mark.parametrize(("stop_takes_s", "fails"), [(0.0, False), (5.0, True)])
async def test_sigterm_stops_the_host_within_the_grace_period_or_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, stop_takes_s: float, fails: bool
) -> None:
    host = ServiceHost("payment-service", ServiceSettings(shutdown_grace_s=0.3))
    stopped: list[bool] = []

    async def start() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the host's handler, as from the kubelet

    async def stop() -> None:
        await asyncio.sleep(stop_takes_s)
        stopped.append(True)

    monkeypatch.setattr(host, "start", start)
    monkeypatch.setattr(host, "stop", stop)
    try:
        if fails:
            with pytest.raises(ShutdownTooSlowError):
                await asyncio.wait_for(host.run_until_signalled(), 3)
            assert stopped == []
        else:
            await asyncio.wait_for(host.run_until_signalled(), 3)
            assert stopped == [True]
    finally:
        await host.producer.stop()
        await host.db.dispose()
        await host._cache.aclose()


async def test_a_request_to_the_service_app_is_one_server_span_continuing_the_callers_trace() -> None:
    spans = InMemorySpanExporter()
    configure_tracing("test-service").add_span_processor(SimpleSpanProcessor(spans))
    service_app = ServiceApi(title="svc")
    seen: list[str | None] = []

    @service_app.post("/widgets/{widget_id}")
    async def widget(widget_id: str) -> dict[str, str]:
        # What a handler emits here carries the request's span context (the outbox's envelopes read it).
        context = current_trace_context()
        seen.append(context.traceparent if context is not None else None)
        return {"id": widget_id}

    trace_id, caller = uuid4().hex, uuid4().hex[:16]
    app = ops_app("svc", Readiness([DependencyCheck("database", fine)]), no_gauges, service_app)
    async with client(app) as http:
        response = await http.post("/widgets/w-1", headers={"traceparent": f"00-{trace_id}-{caller}-01"})
        assert response.status_code == 200
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/no/such/path")).status_code == 404
    finished = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    [server] = [s for s in finished if s.context.trace_id == int(trace_id, 16)]
    assert server.name == "POST /widgets/{widget_id}"
    assert server.parent is not None
    assert server.parent.span_id == int(caller, 16)
    assert server.attributes is not None
    assert (server.attributes["http.route"], server.attributes["http.response.status_code"]) == (
        "/widgets/{widget_id}",
        200,
    )
    assert seen == [f"00-{trace_id}-{format(server.context.span_id, '016x')}-01"]
    # One span per request to the service's app, none inside it (FastAPI's own telemetry is off), and the
    # probes get none; an unmatched path gets a span without a route.
    assert [s.name for s in finished] == ["POST /widgets/{widget_id}", "GET"]
    assert [s.name for s in spans.get_finished_spans() if s.kind is not SpanKind.SERVER] == []


async def test_a_failing_route_is_a_503_on_a_server_span_marked_as_an_error() -> None:
    spans = InMemorySpanExporter()
    configure_tracing("test-service").add_span_processor(SimpleSpanProcessor(spans))
    service_app = ServiceApi(title="svc")

    @service_app.get("/broken")
    async def broken() -> None:
        raise ConnectionError("database down")

    app = ops_app("svc", Readiness([]), no_gauges, service_app)
    before = sample("oms_http_requests_total", method="GET", route="/broken", status="503")
    async with client(app) as http:
        response = await http.get("/broken")
    assert (response.status_code, response.json()["error"]) == (503, "unavailable")
    assert sample("oms_http_requests_total", method="GET", route="/broken", status="503") == before + 1
    [server] = spans.get_finished_spans()
    assert (server.name, server.status.status_code) == ("GET /broken", StatusCode.ERROR)
