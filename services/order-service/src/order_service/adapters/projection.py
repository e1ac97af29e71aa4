"""The order read model: one row per order in `order_summaries`, for searches, ops and tracking.

The row is a projection of the order's stream. It is written in the same transaction as the events
it reflects (`OrderProjection.apply`), so it is never ahead of or behind a committed order, and it
can be thrown away and rebuilt from the event store at any time (`rebuild`): replay only writes this
table, never commands, outbox rows or anything else with a side effect.

The writer already holds the order's history (it decided on it), so the row is folded in memory from
the summary before the events (`before`, the fold of that history) and written with one upsert guarded
by version: no read of the row first. Idempotent by stream version: a row at or past the new version
is left as it is, so re-applying a batch or replaying the whole store is safe, and a row that fell
behind (or was lost) is replaced by the full state.

The order's status is not derived here: the caller passes the status the Order aggregate has after
applying the events, so the read model can never disagree with the aggregate's rules.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from uuid import UUID

from pydantic_core import to_json
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from oms_events import Envelope, Message, MessageRegistry
from oms_events.messages import (
    OrderPlaced,
    OrderRefundActionTaken,
    OrderRefundFailed,
    OrderShipmentUpdated,
    OrderShipped,
    OrderStockReserved,
)
from oms_runtime.db import Database, add_upgrades
from oms_runtime.driver import fetch_in_transaction
from oms_runtime.eventstore import EventStore
from oms_runtime.logging import get_logger
from order_service.adapters.order_sql import SUMMARY_COLUMNS, together
from order_service.domain.order import Order

log = get_logger(__name__)

projection_metadata = MetaData()

FINAL_STATUSES = ("shipped", "rejected", "cancelled")
"""Statuses after which nothing more happens to an order (not stuck, whatever its age)."""

# Literal SQL, not bound parameters, so that the planner can match the partial index below.
OPEN_ORDER = text("status NOT IN ('shipped', 'rejected', 'cancelled')")
FAILED_REFUNDS = text("failed_refunds <> '[]'::jsonb")

order_summaries = Table(
    "order_summaries",
    projection_metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("external_reference", String(100), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("status", String(30), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("last_event_at", DateTime(timezone=True), nullable=False),
    Column("last_event_type", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    # Tracking: the warehouses the stock was reserved in, every shipment, and the latest one's details.
    Column("warehouses", ARRAY(String(100)), nullable=False, server_default="{}"),
    Column("shipments", JSONB, nullable=False, server_default="[]"),
    Column("shipment_status", String(20), nullable=False, server_default="not_shipped"),
    Column("carrier", String(100)),
    Column("tracking_number", String(100)),
    Column("tracking_url", String(500)),
    Column("estimated_delivery", Date),
    # Partial refunds that failed and wait for an operator (the order itself may be shipped).
    Column("failed_refunds", JSONB, nullable=False, server_default="[]"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Keyset pagination on (placed_at, order_id), alone or after an equality filter.
    Index("ix_order_summaries_placed", "placed_at", "order_id"),
    Index("ix_order_summaries_customer", "customer_id", "placed_at", "order_id"),
    Index("ix_order_summaries_status", "status", "placed_at", "order_id"),
    Index("ix_order_summaries_channel", "channel", "placed_at", "order_id"),
    # Stuck orders: only open orders, oldest last event first.
    Index("ix_order_summaries_open_by_last_event", "last_event_at", postgresql_where=OPEN_ORDER),
    Index("ix_order_summaries_failed_refunds", "last_event_at", postgresql_where=FAILED_REFUNDS),
)

# Columns and indexes added after the first release (run by Database.create_schema, also before a rebuild).
add_upgrades(
    projection_metadata,
    (
        "ALTER TABLE order_summaries ADD COLUMN IF NOT EXISTS failed_refunds JSONB NOT NULL DEFAULT '[]'::jsonb",
        "CREATE INDEX IF NOT EXISTS ix_order_summaries_failed_refunds ON order_summaries (last_event_at) "
        "WHERE failed_refunds <> '[]'::jsonb",
    ),
)


def shipment_status(warehouses: Sequence[str], shipments: Sequence[dict[str, Any]]) -> str:
    """`not_shipped`, `partially_shipped` (some warehouses shipped) or `shipped` (all of them).

    Entries of shipments still in their warehouse (no `shipped_at`) do not count; a warehouse whose shipment
    failed or was cancelled no longer has anything to ship."""
    shipped = {s["warehouse_id"] for s in shipments if s.get("shipped_at")}
    if not shipped:
        return "not_shipped"
    given_up = {s["warehouse_id"] for s in shipments if s.get("status") in ("failed", "cancelled")}
    return "shipped" if set(warehouses) - given_up <= shipped else "partially_shipped"


def _shipment_entry(shipments: list[dict[str, Any]], shipment_id: str, warehouse_id: str) -> dict[str, Any]:
    for entry in shipments:
        if entry["shipment_id"] == shipment_id:
            return entry
    entry = {"shipment_id": shipment_id, "warehouse_id": warehouse_id, "status": "created", "shipped_at": None}
    shipments.append(entry)
    return entry


def fold(
    row: dict[str, Any] | None,
    order_id: UUID,
    status: str,
    events: Sequence[tuple[int, Envelope, Message]],
) -> dict[str, Any] | None:
    """The row after `(version, envelope, event)` triples already filtered to new versions.

    Pure. None when there is no row and the events do not start the order (nothing to project).
    """
    new = dict(row) if row is not None else None
    for version, envelope, event in events:
        if isinstance(event, OrderPlaced):
            new = {
                "order_id": order_id,
                "channel": event.channel.value,
                "external_reference": event.external_reference,
                "customer_id": event.customer.customer_id,
                "total_minor": event.total_minor,
                "currency": event.currency,
                "placed_at": envelope.occurred_at,
                "warehouses": [],
                "shipments": [],
                "shipment_status": "not_shipped",
                "carrier": None,
                "tracking_number": None,
                "tracking_url": None,
                "estimated_delivery": None,
                "failed_refunds": [],
            }
        if new is None:
            return None
        if isinstance(event, OrderStockReserved):
            new["warehouses"] = sorted({a.warehouse_id for a in event.allocations})
        elif isinstance(event, OrderShipped):
            shipments = [dict(s) for s in new["shipments"]]
            entry = _shipment_entry(shipments, str(event.shipment_id), event.warehouse_id)
            entry.update(
                {
                    "carrier": event.carrier,
                    "tracking_number": event.tracking_number,
                    "tracking_url": event.tracking_url,
                    "estimated_delivery": event.estimated_delivery.isoformat(),
                    "shipped_at": envelope.occurred_at.isoformat(),
                    "status": "shipped",
                    "status_at": envelope.occurred_at.isoformat(),
                }
            )
            new["shipments"] = shipments
            new["carrier"] = event.carrier
            new["tracking_number"] = event.tracking_number
            new["tracking_url"] = event.tracking_url
            new["estimated_delivery"] = event.estimated_delivery
        elif isinstance(event, OrderShipmentUpdated):
            shipments = [dict(s) for s in new["shipments"]]
            entry = _shipment_entry(shipments, str(event.shipment_id), event.warehouse_id)
            at = event.reported_at or envelope.occurred_at
            entry["status"] = event.status
            entry["status_at"] = at.isoformat()
            entry["location"] = event.location or entry.get("location")
            if event.note:
                entry["note"] = event.note
            if event.status == "delivered":
                entry["delivered_at"] = at.isoformat()
            new["shipments"] = shipments
        elif isinstance(event, OrderRefundFailed):
            failed = [f for f in new.get("failed_refunds") or [] if f["refund"] != event.refund]
            failed.append(
                {
                    "refund": event.refund,
                    "amount_minor": event.amount_minor,
                    "currency": event.currency,
                    "reason_code": event.reason_code,
                    "reason": event.reason,
                    "failed_at": envelope.occurred_at.isoformat(),
                }
            )
            new["failed_refunds"] = failed
        elif isinstance(event, OrderRefundActionTaken):
            new["failed_refunds"] = [f for f in new.get("failed_refunds") or [] if f["refund"] != event.refund]
        new["shipment_status"] = shipment_status(new["warehouses"], new["shipments"])
        new["last_event_at"] = envelope.occurred_at
        new["last_event_type"] = envelope.type
        new["version"] = version
    if new is not None:
        new["status"] = str(status)
    return new


SUMMARY_WRITE: Final = together(("summary",))
"""Writes one row (parameters: `summary_params`) unless the stored one is at its version or past it.

No lock or read first: the event store's unique version lets only one writer of a version commit, and a
rebuild's table lock makes this wait, then apply on top of the rebuilt row."""


def summary_params(summary: "Summary") -> list[Any]:
    """The parameters of the `summary` write (`order_sql`), JSON columns as text."""
    return [to_json(summary[name]).decode() if kind == "jsonb" else summary[name] for name, kind in SUMMARY_COLUMNS]


Summary = dict[str, Any]
"""One `order_summaries` row as a dict (without `updated_at`), as `fold` makes it."""


def summary_of(order_id: UUID, status: str, history: Sequence[tuple[int, Envelope, Message]]) -> Summary | None:
    """The row of an order whose whole stream (versions from 1) is `history`; None before OrderPlaced."""
    return fold(None, order_id, status, history)


class Projection(Protocol):
    """A read model of the order streams, written in the transaction that records their events."""

    @property
    def tables(self) -> Sequence[Table]:
        """What a rebuild empties before replaying the streams into it."""
        ...

    def placed_writes(self, envelope: Envelope, event: OrderPlaced, version: int) -> list[tuple[str, list[Any]]]:
        """What a placement writes here, as `order_sql` writes (name, parameters) for the placement's own
        statement; `apply` is then told `placed_written`."""
        ...

    async def apply(
        self,
        session: AsyncSession,
        order_id: UUID,
        status: str,
        events: Sequence[tuple[Envelope, Message]],
        *,
        version: int,
        placed_written: bool = False,
    ) -> None: ...


class Projections:
    """Several projections applied as one, in the order given: the read models beside `order_summaries`.

    The repository writes `order_summaries` first: that write is where a rebuild's table lock holds
    writers off, so that they touch no other read model before the rebuild is done."""

    def __init__(self, *projections: Projection) -> None:
        self._projections = projections

    @property
    def tables(self) -> Sequence[Table]:
        return [table for projection in self._projections for table in projection.tables]

    def placed_writes(self, envelope: Envelope, event: OrderPlaced, version: int) -> list[tuple[str, list[Any]]]:
        return [w for projection in self._projections for w in projection.placed_writes(envelope, event, version)]

    async def apply(
        self,
        session: AsyncSession,
        order_id: UUID,
        status: str,
        events: Sequence[tuple[Envelope, Message]],
        *,
        version: int,
        placed_written: bool = False,
    ) -> None:
        for projection in self._projections:
            await projection.apply(session, order_id, status, events, version=version, placed_written=placed_written)


class OrderProjection:
    """Keeps `order_summaries` in step with the order streams, inside the caller's transaction."""

    tables = (order_summaries,)

    def summary_after(
        self,
        order_id: UUID,
        status: str,
        events: Sequence[tuple[Envelope, Message]],
        *,
        version: int,
        before: Summary | None,
    ) -> Summary | None:
        """The row after newly recorded events; None when there is nothing to write.

        `status` is the aggregate's status after the events; `version` is the stream's version after
        them (the last event's version), so the events are versions `version - len(events) + 1 ..
        version`. `before` is the row as of the version before them (None for a new stream): events at
        or below its version are skipped.
        """
        if not events:
            return None
        first = version - len(events) + 1
        if first < 1:
            raise ValueError(f"version {version} is too low for {len(events)} events")
        stored = before["version"] if before is not None else 0
        fresh = [(v, e, m) for v, (e, m) in enumerate(events, start=first) if v > stored]
        if not fresh:
            return None
        if fresh[0][0] != stored + 1:
            log.warning(
                "order summary has a gap; rebuild the projection",
                order_id=str(order_id),
                stored_version=stored,
                first_new_version=fresh[0][0],
            )
        new = fold(before, order_id, status, fresh)
        if new is None:
            log.warning("no order summary to update; rebuild the projection", order_id=str(order_id))
        return new

    async def apply(
        self,
        session: AsyncSession,
        order_id: UUID,
        status: str,
        events: Sequence[tuple[Envelope, Message]],
        *,
        version: int,
        before: Summary | None,
    ) -> Summary | None:
        """Projects newly recorded events (see `summary_after`); returns the row after them, if any."""
        new = self.summary_after(order_id, status, events, version=version, before=before)
        if new is not None:
            await fetch_in_transaction(session, SUMMARY_WRITE, *summary_params(new))
        return new if new is not None else before


@dataclass(frozen=True)
class RebuildResult:
    events: int
    orders: int
    skipped: int
    """Events of other streams (order-service's store only has order streams today)."""


ORDER_STREAM_PREFIX = "order-"


async def rebuild(
    db: Database,
    store: EventStore,
    registry: MessageRegistry,
    *,
    batch_size: int = 1000,
    projection: OrderProjection | None = None,
    others: Projection | None = None,
) -> RebuildResult:
    """Empties `order_summaries` (and the tables of the `others` read models) and replays every order
    stream into them, in one transaction.

    Only the read models are written. The tables are locked against writers for the duration (readers
    keep seeing the old rows until the commit); a writer that appends order events meanwhile waits
    and then applies its events on top of the rebuilt rows, so nothing is lost.
    """
    projection = projection or OrderProjection()
    # The orders in flight, as of the events replayed so far: the aggregate and its row.
    aggregates: dict[UUID, tuple[Order, Summary | None]] = {}
    events = orders = skipped = 0
    async with db.transaction() as session:
        tables = [*projection.tables, *(others.tables if others is not None else ())]
        # In the order writers touch them (order_summaries first), so that no writer holds one of them.
        await session.execute(text(f"LOCK TABLE {', '.join(t.name for t in tables)} IN EXCLUSIVE MODE"))
        for table in tables:
            await session.execute(delete(table))
        position = 0
        while True:
            batch = await store.read_all(session, after_position=position, limit=batch_size)
            if not batch:
                break
            position = batch[-1].position
            # Per order, in stream order: all of one order's events in this batch are applied together.
            pending: dict[UUID, list[tuple[Envelope, Message]]] = {}
            last_version: dict[UUID, int] = {}
            for stored in batch:
                if not stored.stream_id.startswith(ORDER_STREAM_PREFIX):
                    skipped += 1
                    continue
                message = registry.decode(stored.envelope)
                order_id = message.order_id
                if order_id not in aggregates:
                    aggregates[order_id] = await _aggregate_before(
                        session, store, registry, stored.stream_id, order_id, stored.version
                    )
                aggregates[order_id][0].apply(message)
                pending.setdefault(order_id, []).append((stored.envelope, message))
                last_version[order_id] = stored.version
                events += 1
                orders += stored.version == 1
            for order_id, order_events in pending.items():
                order, before = aggregates[order_id]
                assert order.status is not None
                after = await projection.apply(
                    session, order_id, order.status.value, order_events, version=last_version[order_id], before=before
                )
                if others is not None:
                    await others.apply(
                        session, order_id, order.status.value, order_events, version=last_version[order_id]
                    )
                if order.status.value in FINAL_STATUSES:
                    del aggregates[order_id]  # keeps memory to the orders still in flight
                else:
                    aggregates[order_id] = (order, after)
    log.info("order projection rebuilt", events=events, orders=orders, skipped=skipped)
    return RebuildResult(events=events, orders=orders, skipped=skipped)


async def _aggregate_before(
    session: AsyncSession, store: EventStore, registry: MessageRegistry, stream_id: str, order_id: UUID, version: int
) -> tuple[Order, Summary | None]:
    """The order and its row as they were before `version`: empty for a new stream, else reloaded (it
    was evicted when it went final, and an event came after, such as a delivery)."""
    if version == 1:
        return Order(order_id), None
    history = [(s.version, s.envelope, registry.decode(s.envelope)) for s in await store.load(session, stream_id)]
    history = [h for h in history if h[0] < version]
    order = Order.from_history(order_id, (message for _, _, message in history))
    return order, summary_of(order_id, order.status.value if order.status is not None else "", history)
