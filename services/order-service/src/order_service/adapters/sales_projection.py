"""The sales read model: one row per order (`sales_orders`) and per sku of an order (`sales_order_lines`).

A projection of the order streams like `order_summaries`: written in the same transaction as the events
it reflects, and rebuilt from the event store by the projection rebuild (which writes nothing else, so a
replay never pays, ships or mails anything). The sales report adds these rows up at query time (see
`order_service.domain.sales` for what each figure means): one row per order keeps the write path to a
single-row update, with no shared counter rows that every order would contend for.

Idempotent by stream version: a change is applied only when its event's version is above the row's
`version`, so re-applying events (a replay over rows already there) changes nothing.

A placement's rows are written by the placement's own statement (`placed_writes`, folded into the
repository's writes as CTEs: one round trip fewer per order); the rebuild sends the same SQL alone.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    and_,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from oms_events import Envelope, Message
from oms_events.messages import OrderPlaced
from oms_runtime.driver import fetch_in_transaction
from order_service.adapters.order_sql import Write, register, together
from order_service.adapters.projection import projection_metadata
from order_service.domain.sales import FactRow, Outcome, outcome_of, refund_of, sold_lines

sales_orders = Table(
    "sales_orders",
    projection_metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("units", Integer, nullable=False),
    Column("gross_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False),
    Index("ix_sales_orders_placed", "placed_at"),
    Index("ix_sales_orders_channel_placed", "channel", "placed_at"),
)

sales_order_lines = Table(
    "sales_order_lines",
    projection_metadata,
    Column("order_id", Uuid, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("gross_minor", BigInteger, nullable=False),
    Column("refunded_units", Integer, nullable=False, server_default="0"),
    Column("refunded_minor", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("order_id", "sku", name="pk_sales_order_lines"),
)


PLACED: Final = "sales_placed"
register(
    PLACED,
    Write(
        (
            # Parameters: order id, channel, currency, placed at, units, gross, version, then the lines' skus,
            # quantities, unit prices and gross values. Both rows are deterministic from the OrderPlaced
            # event: a row already there (a replay, a race) is kept as it is, with what happened to it since.
            "INSERT INTO sales_orders (order_id, channel, currency, placed_at, outcome, units, gross_minor, "
            "refunded_minor, version) VALUES ({0}::uuid, {1}::text, {2}::text, {3}::timestamptz, 'open', "
            "{4}::int, {5}::bigint, 0, {6}::int) ON CONFLICT (order_id) DO NOTHING",
            "INSERT INTO sales_order_lines (order_id, sku, quantity, unit_price_minor, gross_minor, "
            "refunded_units, refunded_minor) SELECT {0}::uuid, l.sku, l.quantity, l.unit_price_minor, "
            "l.gross_minor, 0, 0 FROM unnest({7}::text[], {8}::int[], {9}::bigint[], {10}::bigint[]) "
            "AS l(sku, quantity, unit_price_minor, gross_minor) ON CONFLICT ON CONSTRAINT pk_sales_order_lines "
            "DO NOTHING",
        ),
        11,
    ),
)
_PLACED_ALONE: Final = together((PLACED,))


def placed_params(envelope: Envelope, event: OrderPlaced, version: int) -> list[Any]:
    lines = sold_lines(event.lines)
    return [
        event.order_id,
        event.channel.value,
        event.currency,
        envelope.occurred_at,
        sum(line.quantity for line in lines),
        event.total_minor,
        version,
        [line.sku for line in lines],
        [line.quantity for line in lines],
        [line.unit_price_minor for line in lines],
        [line.gross_minor for line in lines],
    ]


class SalesProjection:
    """Keeps the sales rows in step with the order streams, inside the caller's transaction.

    Only the events that change a sales figure touch the tables (placed, cancelled, rejected, a partial
    refund paid); every other event costs nothing here."""

    tables = (sales_orders, sales_order_lines)

    def placed_writes(self, envelope: Envelope, event: OrderPlaced, version: int) -> list[tuple[str, list[Any]]]:
        """The writes of a placement (`order_sql` names and their parameters), for the placement's statement."""
        return [(PLACED, placed_params(envelope, event, version))]

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
        """Projects newly recorded events, versions `version - len(events) + 1 .. version`; an OrderPlaced
        among them only when its rows are not `placed_written` (by `placed_writes`) already."""
        first = version - len(events) + 1
        for event_version, (envelope, event) in enumerate(events, start=first):
            if isinstance(event, OrderPlaced):
                if not placed_written:
                    await fetch_in_transaction(session, _PLACED_ALONE, *placed_params(envelope, event, event_version))
                continue
            outcome = outcome_of(event)
            if outcome is not None:
                await session.execute(
                    update(sales_orders)
                    .where(sales_orders.c.order_id == order_id, sales_orders.c.version < event_version)
                    .values(outcome=outcome.value, version=event_version)
                )
                continue
            refund = refund_of(event)
            if refund is None:
                continue
            applied = await session.execute(
                update(sales_orders)
                .where(sales_orders.c.order_id == order_id, sales_orders.c.version < event_version)
                .values(refunded_minor=sales_orders.c.refunded_minor + refund.amount_minor, version=event_version)
                .returning(sales_orders.c.order_id)
            )
            if applied.first() is None:
                continue  # applied before (or the order predates the projection: rebuild it)
            for sku, units in refund.units.items():
                await session.execute(
                    update(sales_order_lines)
                    .where(sales_order_lines.c.order_id == order_id, sales_order_lines.c.sku == sku)
                    .values(
                        refunded_units=sales_order_lines.c.refunded_units + units,
                        refunded_minor=sales_order_lines.c.refunded_minor
                        + units * sales_order_lines.c.unit_price_minor,
                    )
                )


def _filters(start: datetime, end: datetime, channel: str | None, currency: str | None) -> ColumnElement[bool]:
    conditions = [sales_orders.c.placed_at >= start, sales_orders.c.placed_at < end]
    if channel is not None:
        conditions.append(sales_orders.c.channel == channel)
    if currency is not None:
        conditions.append(sales_orders.c.currency == currency)
    return and_(*conditions)


class SalesFacts:
    """The sales rows of a period, added up by the database per day (or sku), currency and outcome."""

    async def by_day(
        self,
        session: AsyncSession,
        start: datetime,
        end: datetime,
        tz: str,
        *,
        channel: str | None = None,
        currency: str | None = None,
    ) -> list[FactRow]:
        """Per day (in `tz`), channel, currency and outcome."""
        day = func.date(func.timezone(tz, sales_orders.c.placed_at)).label("day")
        statement = (
            select(
                day,
                sales_orders.c.channel,
                sales_orders.c.currency,
                sales_orders.c.outcome,
                func.count().label("orders"),
                func.sum(sales_orders.c.units).label("units"),
                func.sum(sales_orders.c.gross_minor).label("gross_minor"),
                func.sum(sales_orders.c.refunded_minor).label("refunded_minor"),
            )
            .where(_filters(start, end, channel, currency))
            .group_by(day, sales_orders.c.channel, sales_orders.c.currency, sales_orders.c.outcome)
        )
        rows = (await session.execute(statement)).mappings().all()
        return [
            FactRow(
                day=row["day"],
                channel=row["channel"],
                currency=row["currency"],
                outcome=Outcome(row["outcome"]),
                orders=int(row["orders"]),
                units=int(row["units"]),
                gross_minor=int(row["gross_minor"]),
                refunded_minor=int(row["refunded_minor"]),
            )
            for row in rows
        ]

    async def by_sku(
        self,
        session: AsyncSession,
        start: datetime,
        end: datetime,
        *,
        channel: str | None = None,
        currency: str | None = None,
    ) -> list[FactRow]:
        """Per sku, currency and outcome: the order lines of the period's orders."""
        lines = sales_order_lines
        statement = (
            select(
                lines.c.sku,
                sales_orders.c.currency,
                sales_orders.c.outcome,
                func.count().label("orders"),
                func.sum(lines.c.quantity).label("units"),
                func.sum(lines.c.gross_minor).label("gross_minor"),
                func.sum(lines.c.refunded_minor).label("refunded_minor"),
            )
            .select_from(lines.join(sales_orders, lines.c.order_id == sales_orders.c.order_id))
            .where(_filters(start, end, channel, currency))
            .group_by(lines.c.sku, sales_orders.c.currency, sales_orders.c.outcome)
        )
        rows = (await session.execute(statement)).mappings().all()
        return [
            FactRow(
                sku=row["sku"],
                currency=row["currency"],
                outcome=Outcome(row["outcome"]),
                orders=int(row["orders"]),
                units=int(row["units"]),
                gross_minor=int(row["gross_minor"]),
                refunded_minor=int(row["refunded_minor"]),
            )
            for row in rows
        ]
