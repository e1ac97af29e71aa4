"""The sales report's arithmetic: buckets (days, ISO weeks, months, channels, skus), the figures of each
outcome, totals per currency and the top skus. Pure."""

from datetime import date
from uuid import uuid4

import pytest

from oms_events.messages import OrderCancelled, OrderRejected, OrderReturnRefunded, OrderShortShipRefunded
from oms_events.values import Allocation, OrderLine
from order_service.domain.sales import (
    FactRow,
    GroupBy,
    Outcome,
    bucket_start,
    buckets,
    outcome_of,
    refund_of,
    sold_lines,
    top_skus,
    totals,
)


def row(
    day: date | None,
    outcome: Outcome = Outcome.OPEN,
    *,
    currency: str = "EUR",
    orders: int = 1,
    units: int = 1,
    gross: int = 1000,
    refunded: int = 0,
    channel: str = "web",
    sku: str | None = None,
) -> FactRow:
    return FactRow(
        day=day,
        channel=channel,
        sku=sku,
        currency=currency,
        outcome=outcome,
        orders=orders,
        units=units,
        gross_minor=gross,
        refunded_minor=refunded,
    )


@pytest.mark.parametrize(
    ("day", "group_by", "start"),
    [
        (date(2026, 12, 3), GroupBy.DAY, date(2026, 12, 3)),
        (date(2026, 12, 3), GroupBy.WEEK, date(2026, 11, 30)),  # a Thursday: its week began on Monday
        (date(2026, 11, 30), GroupBy.WEEK, date(2026, 11, 30)),  # a Monday is its own week's start
        (date(2026, 12, 6), GroupBy.WEEK, date(2026, 11, 30)),  # a Sunday ends the week
        (date(2027, 1, 1), GroupBy.WEEK, date(2026, 12, 28)),  # a week across the new year
        (date(2026, 12, 31), GroupBy.MONTH, date(2026, 12, 1)),
        (date(2024, 2, 29), GroupBy.MONTH, date(2024, 2, 1)),
    ],
)
def test_a_day_falls_in_the_bucket_of_its_day_iso_week_or_month(day: date, group_by: GroupBy, start: date) -> None:
    assert bucket_start(day, group_by) == start


def test_cancelled_and_rejected_orders_are_counted_apart_from_the_sales() -> None:
    day = date(2026, 12, 3)
    [bucket] = buckets(
        [
            row(day, orders=3, units=7, gross=9000, refunded=1500),
            row(day, Outcome.CANCELLED, orders=2, units=4, gross=2500, refunded=2500),
            row(day, Outcome.REJECTED, orders=1, units=1, gross=400),
        ],
        GroupBy.DAY,
    )
    f = bucket.figures
    assert (bucket.key, bucket.currency) == ("2026-12-03", "EUR")
    assert (f.orders, f.units, f.gross_minor, f.refunded_minor, f.net_minor) == (3, 7, 9000, 1500, 7500)
    # A cancel's full refund is not a refund of a sale: the cancelled order is not a sale at all.
    assert (f.cancelled_orders, f.cancelled_minor, f.rejected_orders, f.rejected_minor) == (2, 2500, 1, 400)


def test_days_add_up_into_weeks_and_months_per_currency_in_order() -> None:
    rows = [
        row(date(2026, 11, 29), gross=100),  # Sunday: the week of 23 November
        row(date(2026, 11, 30), gross=200),  # Monday
        row(date(2026, 12, 6), gross=400, currency="SEK"),
        row(date(2026, 12, 6), gross=800),
        row(date(2026, 12, 7), gross=1600),
    ]
    weeks = [(b.key, b.currency, b.figures.gross_minor) for b in buckets(rows, GroupBy.WEEK)]
    assert weeks == [
        ("2026-11-23", "EUR", 100),
        ("2026-11-30", "EUR", 1000),
        ("2026-11-30", "SEK", 400),
        ("2026-12-07", "EUR", 1600),
    ]
    months = [(b.key, b.currency, b.figures.gross_minor, b.figures.orders) for b in buckets(rows, GroupBy.MONTH)]
    assert months == [("2026-11-01", "EUR", 300, 2), ("2026-12-01", "EUR", 2400, 2), ("2026-12-01", "SEK", 400, 1)]


def test_channels_are_buckets_of_their_own_over_every_day() -> None:
    rows = [
        row(date(2026, 12, 1), channel="web", gross=100),
        row(date(2026, 12, 2), channel="web", gross=200),
        row(date(2026, 12, 2), channel="store", gross=400),
    ]
    assert [(b.key, b.figures.gross_minor) for b in buckets(rows, GroupBy.CHANNEL)] == [("store", 400), ("web", 300)]


def test_totals_are_per_currency() -> None:
    rows = [
        row(date(2026, 12, 1), gross=100, refunded=10),
        row(date(2026, 12, 2), gross=200),
        row(date(2026, 12, 2), Outcome.CANCELLED, gross=50),
        row(date(2026, 12, 2), currency="DKK", gross=7000),
    ]
    found = {c: (f.orders, f.gross_minor, f.net_minor, f.cancelled_orders) for c, f in totals(rows).items()}
    assert found == {"DKK": (1, 7000, 7000, 0), "EUR": (2, 300, 290, 1)}
    assert list(totals(rows)) == ["DKK", "EUR"]


def test_top_skus_rank_by_units_then_net_value_per_currency_and_ignore_cancelled_orders() -> None:
    rows = [
        row(None, sku="SKU-A", units=5, gross=500),
        row(None, sku="SKU-B", units=5, gross=900, refunded=300),  # net 600: above SKU-A's 500
        row(None, sku="SKU-C", units=9, gross=90),
        row(None, Outcome.CANCELLED, sku="SKU-D", units=50, gross=5000),  # sold nothing
        row(None, sku="SKU-E", units=1, gross=10),
        row(None, sku="SKU-X", units=2, gross=10, currency="SEK"),
    ]
    ranked = [(b.currency, b.key) for b in top_skus(rows, limit=3)]
    assert ranked == [("EUR", "SKU-C"), ("EUR", "SKU-B"), ("EUR", "SKU-A"), ("SEK", "SKU-X")]
    tied = [row(None, sku=s, units=1, gross=10) for s in ("SKU-Z", "SKU-Y")]
    assert [b.key for b in top_skus(tied, limit=5)] == ["SKU-Y", "SKU-Z"], "a full tie is broken by sku"


def test_an_order_repeating_a_sku_sells_it_once_at_the_price_its_refunds_use() -> None:
    lines = [
        OrderLine(sku="SKU-A", quantity=2, unit_price_minor=500),
        OrderLine(sku="SKU-B", quantity=1, unit_price_minor=1000),
        OrderLine(sku="SKU-A", quantity=1, unit_price_minor=450),
    ]
    merged = {line.sku: (line.quantity, line.unit_price_minor, line.gross_minor) for line in sold_lines(lines)}
    assert merged == {"SKU-A": (3, 500, 1450), "SKU-B": (1, 1000, 1000)}


def test_only_cancels_rejections_and_paid_partial_refunds_change_the_figures() -> None:
    order_id = uuid4()
    cancelled = OrderCancelled(
        order_id=order_id, reason_code="requested", customer_message="m", note="n", requested_by="c"
    )
    assert outcome_of(cancelled) is Outcome.CANCELLED
    assert outcome_of(OrderRejected(order_id=order_id, reason_code="out_of_stock", reason="r")) is Outcome.REJECTED
    line = Allocation(sku="SKU-B", warehouse_id="WH-1", quantity=2)
    short = OrderShortShipRefunded(
        order_id=order_id, shipment_id=uuid4(), refund_id=uuid4(), amount_minor=2000, currency="EUR", lines=[line, line]
    )
    refund = refund_of(short)
    assert refund is not None
    assert (refund.amount_minor, refund.units) == (2000, {"SKU-B": 4})
    returned = OrderReturnRefunded(
        order_id=order_id, return_id=uuid4(), refund_id=uuid4(), amount_minor=500, currency="EUR"
    )
    assert refund_of(returned) == refund_of(returned.model_copy(update={"lines": []}))
    assert refund_of(cancelled) is None
    assert outcome_of(short) is None
