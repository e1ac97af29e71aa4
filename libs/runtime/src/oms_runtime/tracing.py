"""OpenTelemetry traces that follow an order from the HTTP call through Kafka to every service.

- An HTTP request to a service's API gets a server span (`server_span`, started by the host's one HTTP
  layer, `oms_runtime.ops_http`), continuing the caller's `traceparent` if any, named by its route
  template (`POST /orders`). FastAPI's own telemetry is off in the services' apps (`ServiceApi`): it made
  the same span and an operation span inside it for about twice the CPU, per request.
- Every message a handler emits carries the current span's W3C context in its envelope
  (`trace_context`) and, through the outbox, in the Kafka `traceparent` header.
- A consumer handles each message in a span whose parent is the message's trace context, so the
  messages it emits continue the same trace: one order, one trace id, across all five services.
- structlog adds `trace_id` and `span_id` to every log line written inside a span.

The exporter is chosen by the environment: OTEL_TRACES_EXPORTER=otlp sends spans over OTLP/HTTP to
OTEL_EXPORTER_OTLP_ENDPOINT (the SDK's own variables: OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*,
OTEL_TRACES_SAMPLER... apply); `console` prints them; `none` (default) exports nothing, but ids are
still made and propagated, so logs and envelopes can be joined.
"""

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from oms_events import Envelope, TraceContext

_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None

tracer = trace.get_tracer("oms")


def configure_tracing(service: str, exporter: str = "none", endpoint: str | None = None) -> TracerProvider:
    """Installs the process's tracer provider once (a process runs one service)."""
    global _provider
    if _provider is not None:
        return _provider
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.namespace": "oms"}))
    span_exporter = _exporter(exporter, endpoint)
    if span_exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def _exporter(name: str, endpoint: str | None = None) -> SpanExporter | None:
    name = name.strip().lower()
    if name in ("", "none"):
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Without an endpoint the SDK reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT itself.
        return OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None)
    raise ValueError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, not {name!r}")


def shutdown_tracing() -> None:
    """Exports what is buffered; called when the service stops."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def current_trace_context() -> TraceContext | None:
    """The active span's W3C context, for the envelope of a message emitted now; None outside a span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if "traceparent" not in carrier:
        return None
    return TraceContext(traceparent=carrier["traceparent"], tracestate=carrier.get("tracestate"))


def _extract(trace_context: TraceContext) -> otel_context.Context:
    carrier = {"traceparent": trace_context.traceparent or ""}
    if trace_context.tracestate:
        carrier["tracestate"] = trace_context.tracestate
    return _PROPAGATOR.extract(carrier)


@contextmanager
def consuming(envelope: Envelope, topic: str, consumer: str) -> Iterator[trace.Span]:
    """The span of handling one message, a child of the span that emitted it."""
    parent = _extract(envelope.trace_context) if envelope.trace_context.traceparent else None
    with tracer.start_as_current_span(
        f"{envelope.type} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": str(envelope.event_id),
            "oms.message.type": envelope.type,
            "oms.order_id": envelope.correlation_id,
        },
    ) as span:
        yield span


@contextmanager
def new_trace(name: str, order_id: object, attributes: Mapping[str, str | int] | None = None) -> Iterator[trace.Span]:
    """The span of work that no request or message started (a timer's re-send of a command): the root of a
    trace of its own, whatever span is current. It carries the order id (`oms.order_id`, as consumer spans
    do), so it can be found from the order, and what is emitted inside it continues it."""
    with tracer.start_as_current_span(
        name,
        context=otel_context.Context(),
        kind=SpanKind.INTERNAL,
        attributes={"oms.order_id": str(order_id), **(attributes or {})},
    ) as span:
        yield span


class ServerSpan:
    """The span of serving one HTTP request, current while the request runs (`start`, then `end`)."""

    __slots__ = ("_span", "_token")

    def __init__(self, scope: Mapping[str, Any]) -> None:
        carrier: dict[str, str] | None = None
        for name, value in scope.get("headers", ()):
            # Only the W3C headers are read: a request without them costs no propagator call.
            if name == b"traceparent" or name == b"tracestate":
                carrier = carrier or {}
                carrier[name.decode()] = value.decode("latin-1")
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        method = scope.get("method", "")
        self._span = tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope.get("path", ""),
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span, parent))

    def end(self, method: str, route: str | None, status: int, error: BaseException | None = None) -> None:
        """Named `METHOD /route/{template}` once routing found a route; an error at 500 and above."""
        otel_context.detach(self._token)
        span = self._span
        if route is not None:
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if error is not None or status >= 500:
            span.set_status(StatusCode.ERROR)
            if error is not None:
                span.set_attribute("error.type", type(error).__qualname__)
        span.end()


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the active span's ids, so a log line can be found from a trace and back."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict
