"""CPU per message of the runtime's consumer path alone, by batch size, on the real PostgreSQL.

    uv run --frozen python deploy/local/bench_runtime.py [--messages 2000] [--batches 1,10,100] [--noop]

The runtime's `MessageProcessor.process_batch`, with JSON logs as the services write them, feeds records
to a handler that does what a typical one does: appends one event to a stream of its own and emits one
more message (two outbox rows, one event row, one inbox row per message); `--noop` handles nothing, which
leaves the runtime's own share (parse, inbox, transaction, outbox). No Kafka: the records are made in
memory, and the outbox rows are written but not published. It prints the Python CPU (utime + stime of
this process) and the wall time per message, which says what the runtime costs a service per message
before the service's own statements; `make bench` measures the whole system.
"""

import argparse
import asyncio
import os
import time
from uuid import uuid4

from sqlalchemy import text

from oms_events import default_registry
from oms_events.messages import ReleaseStock
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore, runtime_metadata
from oms_runtime.logging import configure_logging
from oms_runtime.messaging import HandlerMap, MessageContext, MessageProcessor, SourceRecord
from oms_runtime.testing import RecordingDeadLetters

REGISTRY = default_registry()
STORE = EventStore()


async def append_and_emit(ctx: MessageContext, message: ReleaseStock) -> None:
    await ctx.record(
        STORE, f"order-{message.order_id}", "Order", 0, [ReleaseStock(order_id=message.order_id, reason="a")]
    )
    await ctx.emit(ReleaseStock(order_id=message.order_id, reason="b"))


async def handle_nothing(ctx: MessageContext, message: ReleaseStock) -> None:
    return None


def records(count: int) -> list[SourceRecord]:
    return [
        SourceRecord(
            topic="oms.bench",
            partition=0,
            offset=i,
            key=b"k",
            value=REGISTRY.wrap(ReleaseStock(order_id=uuid4(), reason="r"), producer="bench").to_bytes(),
        )
        for i in range(count)
    ]


async def run(messages: int, batches: list[int], noop: bool) -> None:
    url = os.environ.get("DATABASE_URL", "postgresql+asyncpg://oms:oms@127.0.0.1:5433/oms")
    db = Database(url, schema=f"bench_runtime_{uuid4().hex[:8]}")
    await db.create_schema(runtime_metadata)
    handlers = HandlerMap()
    handlers.register(ReleaseStock, handle_nothing if noop else append_and_emit)
    processor = MessageProcessor(
        consumer="bench",
        producer_name="bench",
        db=db,
        registry=REGISTRY,
        handlers=handlers,
        dead_letters=RecordingDeadLetters("bench"),
    )
    try:
        print(
            f"handler: {'none' if noop else 'one event appended, one message emitted'}; load {os.getloadavg()[0]:.1f}"
        )
        for batch in batches:
            work = records(messages + batch)
            await processor.process_batch(work[:batch])  # warm: connections, prepared statements
            cpu, wall = time.process_time(), time.perf_counter()
            for start in range(batch, len(work), batch):
                await processor.process_batch(work[start : start + batch])
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"batch {batch:4}: {1e6 * cpu / messages:7.0f} us CPU per message, {1e6 * wall / messages:7.0f} us wall"
            )
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{db.schema}" CASCADE'))
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per batch size (default 2000)")
    parser.add_argument("--batches", default="1,10,100", help="batch sizes, comma-separated (default 1,10,100)")
    parser.add_argument("--noop", action="store_true", help="a handler that does nothing: the runtime's share")
    args = parser.parse_args()
    configure_logging("bench-runtime", "INFO", "json")
    asyncio.run(run(args.messages, [int(b) for b in args.batches.split(",")], args.noop))


if __name__ == "__main__":
    main()
