"""The sales read model and report, on the real PostgreSQL in a throwaway schema.

Orders are driven by the Order aggregate's own decisions (placed, paid, short-shipped and refunded,
returned, declined, cancelled); their events go to the event store and through every read model in one
transaction, as the repository records them, each with a time set by the test. The report's figures are
checked against what the test placed; a rebuild from the event store gives the same rows, and writes
nothing else.
"""

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

import order_service.adapters.projection
from oms_events import Event, default_registry
from oms_events.messages import (
    OrderPlaced,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    RefundPayment,
    ReturnAuthorised,
    ReturnInspected,
    ReturnReceived,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentPicked,
    Shipped,
    StockReleased,
    StockReserved,
)
from oms_events.values import Address, Allocation, Channel, Customer, DeliveryMethod, OrderLine
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from oms_runtime.outbox import outbox_table
from oms_runtime.reports import report_period
from oms_runtime.testing import stderr_logger, throwaway_schema
from order_service.adapters.projection import projection_metadata, rebuild
from order_service.adapters.read_models import read_models
from order_service.adapters.sales_projection import sales_order_lines, sales_orders
from order_service.adapters.tables import metadata
from order_service.domain.order import Decision, Order
from order_service.domain.sales import GroupBy
from order_service.sales_report import SalesQuery, SalesReports

REGISTRY = default_registry()
STORE = EventStore()
READ_MODELS = read_models().others  # order_summaries is not what these tests are about
# Monday 30 November 2026, 22:30 UTC: 23:30 in Berlin, the same day; an hour later it is Tuesday there.
T0 = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)
PRICES = {"SKU-A": 500, "SKU-B": 1000, "SKU-C": 250}


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_sales", metadata, projection_metadata) as database:
        yield database


@pytest_asyncio.fixture
async def empty(db: Database) -> Database:
    async with db.transaction() as session:
        await session.execute(text("TRUNCATE events, outbox, order_summaries, sales_orders, sales_order_lines"))
    return db


@pytest.fixture(autouse=True)
def fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order_service.adapters.projection, "log", stderr_logger())


class Shop:
    """Drives orders through the aggregate and records each decision like the repository does."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def decide(self, order: Order, decision: Decision, at: datetime) -> Decision:
        events: Sequence[Event] = [e for e in decision.events if isinstance(e, Event)]
        assert events, "the decision recorded nothing"
        envelopes = [REGISTRY.wrap(e, producer="order-service").model_copy(update={"occurred_at": at}) for e in events]
        async with self.db.transaction() as session:
            await STORE.append(session, f"order-{order.order_id}", "order", order.version, envelopes)
            for event in events:
                order.apply(event)
            assert order.status is not None
            await READ_MODELS.apply(
                session,
                order.order_id,
                order.status.value,
                list(zip(envelopes, events, strict=True)),
                version=order.version,
            )
        return decision

    async def place(
        self, at: datetime, lines: dict[str, int], *, channel: Channel = Channel.WEB, currency: str = "EUR"
    ) -> Order:
        order_lines = [OrderLine(sku=sku, quantity=q, unit_price_minor=PRICES[sku]) for sku, q in lines.items()]
        placed = OrderPlaced(
            order_id=uuid4(),
            channel=channel,
            external_reference=f"R-{uuid4().hex[:8]}",
            customer=Customer(customer_id="c-1", name="Jane", email="jane@example.com"),
            lines=order_lines,
            currency=currency,
            total_minor=sum(line.quantity * line.unit_price_minor for line in order_lines),
            shipping_address=Address(name="Jane", line1="Main 1", city="Berlin", postal_code="10115", country="DE"),
            delivery_method=DeliveryMethod.STANDARD,
        )
        order = Order(placed.order_id)
        await self.decide(order, Order.place(placed), at)
        allocations = [Allocation(sku=line.sku, warehouse_id="WH-1", quantity=line.quantity) for line in order_lines]
        reserved = StockReserved(order_id=order.order_id, reservation_id=uuid4(), allocations=allocations)
        await self.decide(order, order.on_stock_reserved(reserved, "tok_approve"), at)
        return order

    async def pay(self, order: Order, at: datetime) -> None:
        assert order.placed is not None
        captured = PaymentCaptured(
            order_id=order.order_id,
            payment_id=uuid4(),
            amount_minor=order.placed.total_minor,
            currency=order.placed.currency,
            gateway_reference="g",
        )
        await self.decide(order, order.on_payment_captured(captured), at)

    async def refund(self, order: Order, decision: Decision, at: datetime) -> None:
        """Payment refunds what the decision asked for."""
        [command] = [c for c in decision.commands if isinstance(c, RefundPayment)]
        assert order.payment_id is not None
        refunded = PaymentRefunded(
            order_id=order.order_id,
            payment_id=order.payment_id,
            refund_id=uuid4(),
            amount_minor=command.amount_minor,
            currency=command.currency,
        )
        await self.decide(order, order.on_payment_refunded(refunded), at)

    async def ship(self, order: Order, at: datetime, short: dict[str, int] | None = None) -> Shipped:
        """WH-1 picks everything but `short` (refunded when paid), ships, and the carrier delivers."""
        shipment_id = uuid4()
        lines = list(order.allocations)
        created = ShipmentCreated(
            order_id=order.order_id, shipment_id=shipment_id, warehouse_id="WH-1", lines=lines, mode="manual"
        )
        await self.decide(order, order.on_shipment_progress(created), at)
        if short:
            missing = [line.model_copy(update={"quantity": short[line.sku]}) for line in lines if line.sku in short]
            picked = [
                line.model_copy(update={"quantity": line.quantity - short.get(line.sku, 0)})
                for line in lines
                if line.quantity > short.get(line.sku, 0)
            ]
            progress = ShipmentPicked(
                order_id=order.order_id, shipment_id=shipment_id, warehouse_id="WH-1", picked=picked, short=missing
            )
            await self.refund(order, await self.decide(order, order.on_shipment_progress(progress), at), at)
        shipped = Shipped(
            order_id=order.order_id,
            shipment_id=shipment_id,
            warehouse_id="WH-1",
            carrier="DHL",
            tracking_number=f"T{uuid4().hex[:8]}",
            tracking_url="https://track.example/",
            estimated_delivery=date(2026, 12, 4),
        )
        await self.decide(order, order.on_shipped(shipped), at)
        delivered = ShipmentDelivered(
            order_id=order.order_id,
            shipment_id=shipment_id,
            carrier="DHL",
            tracking_number=shipped.tracking_number,
            reported_at=at,
        )
        await self.decide(order, order.on_shipment_progress(delivered), at)
        return shipped

    async def give_back(self, order: Order, units: dict[str, int], at: datetime) -> None:
        """The customer returns units, all sellable; their value is refunded."""
        return_id = uuid4()
        await self.decide(order, order.request_return(return_id, units, "did not fit", "customer"), at)
        lines = order.returns[return_id].lines
        authorised = ReturnAuthorised(order_id=order.order_id, return_id=return_id, lines=lines)
        await self.decide(order, order.on_return_authorised(authorised), at)
        received = ReturnReceived(order_id=order.order_id, return_id=return_id, received_by="wh")
        await self.decide(order, order.on_return_received(received), at)
        inspected = ReturnInspected(
            order_id=order.order_id, return_id=return_id, sellable=lines, unsellable=[], inspected_by="wh"
        )
        await self.refund(order, await self.decide(order, order.on_return_inspected(inspected), at), at)

    async def decline(self, order: Order, at: datetime) -> None:
        declined = PaymentDeclined(
            order_id=order.order_id, payment_id=uuid4(), reason_code="insufficient_funds", reason="no"
        )
        await self.decide(order, order.on_payment_declined(declined), at)
        await self.decide(
            order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=None)), at
        )

    async def cancel(self, order: Order, at: datetime) -> None:
        await self.decide(order, order.request_cancel("changed my mind", "customer"), at)
        await self.decide(
            order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=None)), at
        )


async def rows(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with db.transaction() as session:
        orders = (await session.execute(select(sales_orders).order_by(sales_orders.c.order_id))).mappings().all()
        lines = (
            (
                await session.execute(
                    select(sales_order_lines).order_by(sales_order_lines.c.order_id, sales_order_lines.c.sku)
                )
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in orders], [dict(r) for r in lines]


async def scenario(shop: Shop) -> None:
    """Five orders over a week (see the expectations below)."""
    a = await shop.place(T0, {"SKU-A": 2, "SKU-B": 1})  # 2000, web
    await shop.pay(a, T0)
    await shop.ship(a, T0 + timedelta(minutes=5), short={"SKU-B": 1})  # 1000 refunded
    b = await shop.place(T0 + timedelta(hours=1), {"SKU-C": 4}, channel=Channel.MARKETPLACE)  # 1000
    await shop.pay(b, T0 + timedelta(hours=1))
    await shop.ship(b, T0 + timedelta(hours=2))
    await shop.give_back(b, {"SKU-C": 1}, T0 + timedelta(days=3))  # 250 refunded
    c = await shop.place(T0 + timedelta(days=1), {"SKU-A": 1})  # 500, declined: rejected
    await shop.decline(c, T0 + timedelta(days=1))
    d = await shop.place(T0 + timedelta(days=2), {"SKU-B": 2})  # 2000, cancelled before its payment
    await shop.cancel(d, T0 + timedelta(days=2, minutes=1))
    await shop.place(T0 + timedelta(days=7), {"SKU-A": 3}, currency="SEK")  # 1500, awaiting payment


def figures(orders: int = 0, units: int = 0, gross: int = 0, refunded: int = 0, **apart: int) -> dict[str, int]:
    return {
        "orders": orders,
        "units": units,
        "gross_minor": gross,
        "refunded_minor": refunded,
        "net_minor": gross - refunded,
        "cancelled_orders": apart.get("cancelled", 0),
        "cancelled_minor": apart.get("cancelled_minor", 0),
        "rejected_orders": apart.get("rejected", 0),
        "rejected_minor": apart.get("rejected_minor", 0),
    }


async def report(db: Database, group_by: GroupBy, start: str = "2026-11-30", end: str = "2026-12-07", **kw: Any) -> Any:
    tz = kw.pop("tz", "UTC")
    return await SalesReports(db).report(SalesQuery(period=report_period(start, end, tz), group_by=group_by, **kw))


def by_bucket(view: Any) -> dict[tuple[str, str], dict[str, int]]:
    return {(b.bucket, b.currency): b.model_dump(exclude={"bucket", "currency"}) for b in view.buckets}


async def test_the_report_adds_up_what_was_sold_refunded_cancelled_and_rejected(empty: Database) -> None:
    await scenario(Shop(empty))

    days = await report(empty, GroupBy.DAY)
    assert by_bucket(days) == {
        ("2026-11-30", "EUR"): figures(2, 7, 3000, 1250),
        ("2026-12-01", "EUR"): figures(rejected=1, rejected_minor=500),
        ("2026-12-02", "EUR"): figures(cancelled=1, cancelled_minor=2000),
        ("2026-12-07", "SEK"): figures(1, 3, 1500),
    }
    totals = {t.currency: t.model_dump(exclude={"currency"}) for t in days.totals}
    assert totals == {
        "EUR": figures(2, 7, 3000, 1250, cancelled=1, cancelled_minor=2000, rejected=1, rejected_minor=500),
        "SEK": figures(1, 3, 1500),
    }
    assert [(t.currency, t.sku, t.units, t.net_minor) for t in days.top_skus] == [
        ("EUR", "SKU-C", 4, 750),
        ("EUR", "SKU-A", 2, 1000),
        ("EUR", "SKU-B", 1, 0),
        ("SEK", "SKU-A", 3, 1500),
    ]

    weeks = await report(empty, GroupBy.WEEK)
    assert by_bucket(weeks) == {
        ("2026-11-30", "EUR"): figures(
            2, 7, 3000, 1250, cancelled=1, cancelled_minor=2000, rejected=1, rejected_minor=500
        ),
        ("2026-12-07", "SEK"): figures(1, 3, 1500),
    }
    months = await report(empty, GroupBy.MONTH)
    assert set(by_bucket(months)) == {("2026-11-01", "EUR"), ("2026-12-01", "EUR"), ("2026-12-01", "SEK")}
    assert by_bucket(months)[("2026-12-01", "EUR")] == figures(
        cancelled=1, cancelled_minor=2000, rejected=1, rejected_minor=500
    )

    channels = await report(empty, GroupBy.CHANNEL)
    assert by_bucket(channels) == {
        ("marketplace", "EUR"): figures(1, 4, 1000, 250),
        ("web", "EUR"): figures(1, 3, 2000, 1000, cancelled=1, cancelled_minor=2000, rejected=1, rejected_minor=500),
        ("web", "SEK"): figures(1, 3, 1500),
    }

    skus = await report(empty, GroupBy.SKU)
    assert by_bucket(skus) == {
        ("SKU-A", "EUR"): figures(1, 2, 1000, rejected=1, rejected_minor=500),
        ("SKU-B", "EUR"): figures(1, 1, 1000, 1000, cancelled=1, cancelled_minor=2000),
        ("SKU-C", "EUR"): figures(1, 4, 1000, 250),
        ("SKU-A", "SEK"): figures(1, 3, 1500),
    }
    # Totals count orders, not their lines (order A holds two skus).
    assert {t.currency: t.orders for t in skus.totals} == {"EUR": 2, "SEK": 1}


async def test_days_are_counted_in_the_time_zone_asked_for_and_the_period_and_filters_hold(empty: Database) -> None:
    await scenario(Shop(empty))
    berlin = by_bucket(await report(empty, GroupBy.DAY, tz="Europe/Berlin", currency="EUR"))
    # Order B was placed at 23:30 UTC on 30 November: 00:30 on 1 December in Berlin.
    assert berlin == {
        ("2026-11-30", "EUR"): figures(1, 3, 2000, 1000),
        ("2026-12-01", "EUR"): figures(1, 4, 1000, 250, rejected=1, rejected_minor=500),
        ("2026-12-02", "EUR"): figures(cancelled=1, cancelled_minor=2000),
    }
    middle = await report(empty, GroupBy.DAY, "2026-12-01", "2026-12-02")
    assert set(by_bucket(middle)) == {("2026-12-01", "EUR"), ("2026-12-02", "EUR")}
    instants = await report(empty, GroupBy.DAY, "2026-11-30T22:30:00Z", "2026-11-30T23:30:00Z")
    assert by_bucket(instants) == {("2026-11-30", "EUR"): figures(1, 3, 2000, 1000)}, "from inclusive, to exclusive"
    marketplace = await report(empty, GroupBy.CHANNEL, channel="marketplace")
    assert list(by_bucket(marketplace)) == [("marketplace", "EUR")]
    assert [t.sku for t in marketplace.top_skus] == ["SKU-C"]
    sek = await report(empty, GroupBy.SKU, currency="SEK")
    assert list(by_bucket(sek)) == [("SKU-A", "SEK")]
    assert [t.currency for t in sek.totals] == ["SEK"]
    top_one = await report(empty, GroupBy.DAY, top=1)
    assert [(t.currency, t.sku) for t in top_one.top_skus] == [("EUR", "SKU-C"), ("SEK", "SKU-A")]


async def test_replaying_events_changes_nothing_and_a_rebuild_gives_the_same_rows_without_side_effects(
    empty: Database,
) -> None:
    await scenario(Shop(empty))
    before = await rows(empty)
    assert len(before[0]) == 5
    async with empty.transaction() as session:
        stored = await STORE.read_all(session, after_position=0, limit=10_000)
        outbox = await session.scalar(select(func.count()).select_from(outbox_table))
    # Every event once more, as a redelivery or an overlapping rebuild would: the versions skip them.
    async with empty.transaction() as session:
        for event in stored:
            message = REGISTRY.decode(event.envelope)
            await READ_MODELS.apply(
                session, message.order_id, "placed", [(event.envelope, message)], version=event.version
            )
    assert await rows(empty) == before

    async with empty.transaction() as session:  # damage the read model
        await session.execute(text("DELETE FROM sales_order_lines WHERE sku = 'SKU-C'"))
        await session.execute(text("UPDATE sales_orders SET refunded_minor = 0, outcome = 'open'"))
    models = read_models()
    result = await rebuild(empty, STORE, REGISTRY, projection=models.summaries, others=models.others)
    assert result.orders == 5
    assert await rows(empty) == before
    async with empty.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(outbox_table)) == outbox
        assert await session.scalar(text("SELECT count(*) FROM order_summaries")) == 5, "both read models rebuilt"
