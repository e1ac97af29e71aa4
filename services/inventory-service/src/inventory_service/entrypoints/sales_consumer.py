"""The sales history's source: every `OrderPlaced` on the orders topic adds its lines' units to the day
(UTC) the order was placed.

Demand, not shipments: an order that is rejected for want of stock was still demand, and counting
only what shipped would teach the forecast that a sku out of stock sells nothing.

The live consumer has a group of its own (`inventory-service-demand`), so it reads the orders topic
at its own pace, apart from the reservation commands. It is idempotent twice over: the runtime's inbox
skips a redelivered message, and `demand_orders` skips an order already counted.

Rebuild (`python -m inventory_service.entrypoints.sales_consumer rebuild`): empties the history and
re-reads the orders topic from its beginning with a fresh consumer (no group, so no committed offsets
move), up to the end offsets seen at the start. It is safe while the service runs: the tables are
locked while they are emptied, and an order the live consumer records meanwhile is counted once. A
replay only sees what the topic still holds (`oms.orders.events` keeps 7 days): history older than
the retention is lost by a rebuild, so rebuild only to repair a table that is wrong, not routinely.
"""

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.planning_tables import daily_demand, demand_orders
from inventory_service.adapters.sales_history import OrderDemand, SalesHistory
from inventory_service.adapters.tables import metadata
from oms_events import ContractViolationError, Envelope, MessageRegistry, default_registry, topics
from oms_events.messages import OrderPlaced
from oms_runtime.db import Database
from oms_runtime.host import ConsumerSpec
from oms_runtime.kafka_connection import KafkaConnection, connection_of
from oms_runtime.logging import configure_logging, get_logger
from oms_runtime.messaging import HandlerMap, MessageContext
from oms_runtime.settings import ServiceSettings

log = get_logger(__name__)

DEMAND_GROUP = "inventory-service-demand"
REBUILD_BATCH = 500


def demand_day(envelope: Envelope | None) -> date:
    """The UTC day an order was placed: its event's time (a naive time is taken as UTC)."""
    placed = envelope.occurred_at if envelope is not None else datetime.now(UTC)
    if placed.tzinfo is None:
        placed = placed.replace(tzinfo=UTC)
    return placed.astimezone(UTC).date()


_BATCH = "inventory_service.demand_batch"
"""Where a batch transaction keeps the orders it has yet to record (the session's `info`)."""


class DemandRecorder:
    """Records each placed order's units; a polled batch of orders in one statement at its end."""

    def __init__(self, history: SalesHistory) -> None:
        self._history = history

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(OrderPlaced, self.order_placed)
        handlers.batch_scope = self
        return handlers

    async def begin(self, session: AsyncSession, messages: Sequence[Any]) -> None:
        session.info[_BATCH] = []

    async def end(self, session: AsyncSession) -> None:
        pending: list[OrderDemand] = session.info.pop(_BATCH, [])
        counted = await self._history.record_orders(session, pending)
        log.debug("demand recorded", orders=len(counted))
        if len(counted) < len(pending):
            log.info("orders already counted as demand", orders=len(pending) - len(counted))

    async def order_placed(self, ctx: MessageContext, event: OrderPlaced) -> None:
        day = demand_day(ctx.envelope)
        lines = [(line.sku, line.quantity) for line in event.lines]
        pending: list[OrderDemand] | None = ctx.session.info.get(_BATCH)
        if pending is not None:
            pending.append((event.order_id, day, lines))
        elif await self._history.record_order(ctx.session, event.order_id, day, lines):
            log.debug("demand recorded", day=day.isoformat(), units=sum(q for _, q in lines))
        else:
            log.info("order already counted as demand")


def demand_consumer(history: SalesHistory) -> ConsumerSpec:
    return ConsumerSpec(
        group_id=DEMAND_GROUP, topics=[topics.ORDERS_EVENTS], handlers=DemandRecorder(history).handler_map()
    )


@dataclass(frozen=True)
class RebuildReport:
    records: int
    orders: int
    unreadable: int


async def rebuild_daily_demand(
    db: Database,
    kafka: KafkaConnection | str,
    *,
    topic: str = topics.ORDERS_EVENTS,
    registry: MessageRegistry | None = None,
    history: SalesHistory | None = None,
) -> RebuildReport:
    """Empties the sales history and records it again from every `OrderPlaced` still on the topic."""
    registry = registry or default_registry()
    history = history or SalesHistory()
    async with db.transaction() as session:
        # Waits for the live consumer's open transactions and holds it off until the tables are empty,
        # so none of its orders is counted in `demand_orders` but lost from `daily_demand`.
        await session.execute(text(f"LOCK TABLE {demand_orders.name}, {daily_demand.name} IN SHARE ROW EXCLUSIVE MODE"))
        await history.clear(session)

    connection = connection_of(kafka)
    consumer = AIOKafkaConsumer(**connection.client_args(), enable_auto_commit=False)
    await consumer.start()
    records = orders = unreadable = 0
    try:
        partitions = await _partitions(connection, topic)
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        # Explicit seeks: seek_to_beginning() can race the offset reset that assign() starts.
        for tp, offset in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, offset)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=REBUILD_BATCH)
            placed: list[tuple[Envelope, OrderPlaced]] = []
            for tp, tp_records in batch.items():
                for record in tp_records:
                    if record.offset >= end[tp]:
                        continue
                    records += 1
                    try:
                        envelope = registry.parse_envelope(record.value)
                        if envelope.type != OrderPlaced.message_type:
                            continue
                        message = registry.decode(envelope)
                    except ContractViolationError as exc:
                        # The live consumer dead-lettered it already; a rebuild only counts it.
                        unreadable += 1
                        log.warning(
                            "unreadable record skipped", partition=tp.partition, offset=record.offset, reason=exc.reason
                        )
                        continue
                    if isinstance(message, OrderPlaced):
                        placed.append((envelope, message))
            if placed:
                async with db.transaction() as session:
                    counted = await history.record_orders(
                        session,
                        [
                            (
                                message.order_id,
                                demand_day(envelope),
                                [(line.sku, line.quantity) for line in message.lines],
                            )
                            for envelope, message in placed
                        ],
                    )
                orders += len(counted)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    log.info("daily demand rebuilt", records=records, orders=orders, unreadable=unreadable)
    return RebuildReport(records=records, orders=orders, unreadable=unreadable)


async def _partitions(kafka: KafkaConnection, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**kafka.client_args())
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0:
        raise RuntimeError(f"topic {topic} cannot be read: error {described['error_code']}")
    return [
        TopicPartition(topic, p["partition"]) for p in sorted(described["partitions"], key=lambda p: p["partition"])
    ]


async def _rebuild(settings: ServiceSettings) -> RebuildReport:
    db = Database.for_service(settings, "inventory-service")
    try:
        await db.create_schema(metadata)
        return await rebuild_daily_demand(db, settings.kafka_connection())
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["rebuild"], help="rebuild the sales history from the orders topic")
    parser.parse_args()
    settings = ServiceSettings()
    configure_logging("inventory-service", settings.log_level, settings.log_format)
    report = asyncio.run(_rebuild(settings))
    print(f"read {report.records} records, recorded {report.orders} orders, skipped {report.unreadable} unreadable")


if __name__ == "__main__":
    main()
