"""Prometheus metrics of every service, defined once here and served at GET /metrics by the host.

Labels stay low-cardinality on purpose: topics, message types, consumer groups, routes (templates,
never raw paths) and outcomes; never order ids. Gauges that need I/O (outbox lag, consumer lag) are
refreshed by the host just before a scrape is rendered (see `ServiceHost.refresh_gauges`).
"""

from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.routing import Mount

# Handlers run in milliseconds; a saga step waits on another service (seconds to minutes).
_HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SAGA_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

MESSAGES_CONSUMED = Counter(
    "oms_messages_consumed_total",
    "Records a consumer read, by what became of them (processed, duplicate, skipped, dead_lettered)",
    ["consumer", "topic", "type", "outcome"],
)
MESSAGES_PRODUCED = Counter(
    "oms_messages_produced_total",
    "Messages the outbox relay published, by topic and message type",
    ["topic", "type"],
)
HANDLER_DURATION = Histogram(
    "oms_handler_duration_seconds",
    "Time to handle one message, transaction included (successful attempts)",
    ["consumer", "type"],
    buckets=_HANDLER_BUCKETS,
)
HANDLER_ERRORS = Counter(
    "oms_handler_errors_total",
    "Failed handler attempts (each retry counts), by consumer and message type",
    ["consumer", "type"],
)
DEAD_LETTERS = Counter(
    "oms_dead_letters_total",
    "Records sent to a dead-letter topic, by consumer and the topic they came from",
    ["consumer", "source_topic", "dead_letter_topic"],
)
OUTBOX_LAG = Gauge(
    "oms_outbox_lag_seconds",
    "Age of the oldest committed outbox row not yet published (0 when the outbox is drained)",
)
OUTBOX_PENDING = Gauge("oms_outbox_pending_messages", "Committed outbox rows not yet published")
CONSUMER_LAG = Gauge(
    "oms_consumer_lag_messages",
    "Records on a partition after the consumer group's committed offset",
    ["group", "topic", "partition"],
)
SAGA_STEP_DURATION = Histogram(
    "oms_saga_step_duration_seconds",
    "Time from sending a saga step's command to the reply that ended the step",
    ["step", "outcome"],
    buckets=_SAGA_BUCKETS,
)
SAGA_STEPS = Counter(
    "oms_saga_steps_total",
    "Saga steps that ended, by step and outcome (e.g. reserve_stock/succeeded, capture_payment/failed)",
    ["step", "outcome"],
)
HTTP_REQUESTS = Counter(
    "oms_http_requests_total", "HTTP requests served, by route template and status", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "oms_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=_HANDLER_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge("oms_http_requests_in_flight", "HTTP requests being served")
READY = Gauge("oms_ready", "1 when the last readiness check passed, 0 otherwise")


def record_saga_step(step: str, outcome: str, duration_s: float | None) -> None:
    """The saga's hook: one step ended (`outcome`: succeeded, failed, timed_out, ...)."""
    SAGA_STEPS.labels(step=step, outcome=outcome).inc()
    if duration_s is not None and duration_s >= 0:
        SAGA_STEP_DURATION.labels(step=step, outcome=outcome).observe(duration_s)


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST


def route_template(scope: Mapping[str, Any]) -> str:
    """The template of the route that served a request (`/orders/{order_id}`), read from the scope after
    routing, so ids never become labels; `unmatched` when no route matched the path."""
    route = scope.get("route")
    # A Mount left as the route means no route of the mounted app matched the path.
    if route is None or isinstance(route, Mount):
        return "unmatched"
    return str(getattr(route, "path", "unmatched"))


_HTTP_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_HTTP_SERIES_KEPT = 2_000
"""The children of one request's labels, kept: `labels()` takes a lock and builds its key every call.
Bounded, since a client chooses the method (a label) of an unmatched request."""


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    """Counts and times one request served (`oms_http_requests_total`, `oms_http_request_duration_seconds`)."""
    key = (method, route, status)
    series = _HTTP_SERIES.get(key)
    if series is None:
        series = (
            HTTP_REQUESTS.labels(method=method, route=route, status=str(status)),
            HTTP_DURATION.labels(method=method, route=route),
        )
        if len(_HTTP_SERIES) < _HTTP_SERIES_KEPT:
            _HTTP_SERIES[key] = series
    series[0].inc()
    series[1].observe(seconds)
