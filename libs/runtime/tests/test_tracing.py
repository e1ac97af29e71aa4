"""Trace context: from a consumed message's envelope, through the handler's span, into what it emits."""

from uuid import uuid4

from sqlalchemy import select

from oms_events import TraceContext, default_registry
from oms_events.messages import ReleaseStock, ReserveStock
from oms_events.values import StockLine
from oms_runtime.db import Database
from oms_runtime.messaging import HandlerMap, MessageContext, Outcome, SourceRecord
from oms_runtime.outbox import outbox_table
from oms_runtime.testing import HandlerHarness
from oms_runtime.tracing import add_trace_ids, configure_tracing, current_trace_context, tracer

registry = default_registry()


def test_outside_a_span_there_is_no_trace_context_to_send() -> None:
    configure_tracing("test-service")
    assert current_trace_context() is None
    assert "trace_id" not in add_trace_ids(None, "info", {})


def test_a_span_gives_its_context_to_messages_and_its_ids_to_log_lines() -> None:
    configure_tracing("test-service")
    with tracer.start_as_current_span("work") as span:
        context = current_trace_context()
        line = add_trace_ids(None, "info", {"message": "hello"})
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert context is not None
    assert context.traceparent is not None
    assert context.traceparent.split("-")[1] == trace_id
    assert line["trace_id"] == trace_id
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


async def test_what_a_handler_emits_continues_the_trace_of_the_message_it_handles(db: Database) -> None:
    configure_tracing("test-service")
    trace_id, parent_span = uuid4().hex, uuid4().hex[:16]
    seen: list[TraceContext | None] = []

    async def on_reserve(ctx: MessageContext, message: ReserveStock) -> None:
        seen.append(current_trace_context())
        await ctx.emit(ReleaseStock(order_id=message.order_id, reason="test"))

    handlers = HandlerMap()
    handlers.register(ReserveStock, on_reserve)
    harness = HandlerHarness(db, "tracing-test", handlers)
    message = ReserveStock(order_id=uuid4(), lines=[StockLine(sku="SKU-1", quantity=1)])
    envelope = registry.wrap(
        message, producer="upstream", trace_context=TraceContext(traceparent=f"00-{trace_id}-{parent_span}-01")
    )
    record = SourceRecord(message.topic, 0, 1, message.key.encode(), envelope.to_bytes())
    assert await harness.processor.process(record) == Outcome.PROCESSED

    [inside] = seen
    assert inside is not None
    assert inside.traceparent is not None
    _, inside_trace, inside_span, _ = inside.traceparent.split("-")
    assert inside_trace == trace_id
    assert inside_span != parent_span, "the handler runs in a span of its own, a child of the message's"
    async with db.transaction() as session:
        [(value, headers)] = (await session.execute(select(outbox_table.c.value, outbox_table.c.headers))).all()
    emitted = registry.parse_envelope(value)
    assert emitted.trace_context.traceparent == inside.traceparent
    assert headers["traceparent"] == inside.traceparent
