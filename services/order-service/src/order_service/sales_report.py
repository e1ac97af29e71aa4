"""The sales report's use case: the period's sales rows, added up per bucket and currency, with top skus.

The database adds the orders up per day (or sku), currency and outcome (`SalesFacts`); the figures,
weeks, months and rankings are `order_service.domain.sales`'s pure functions. The answer is the API's
response body (`SalesReportView`); `CSV_COLUMNS` are its CSV file's columns, one row per bucket.
"""

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from oms_runtime.db import Database
from oms_runtime.reports import Period
from order_service.adapters.sales_projection import SalesFacts
from order_service.domain.sales import Bucket, Figures, GroupBy, buckets, top_skus, totals

MAX_TOP_SKUS = 100


class SalesFiguresView(BaseModel):
    orders: int = Field(description="Orders placed and not (so far) cancelled or rejected")
    units: int = Field(description="Their units")
    gross_minor: int = Field(description="Their value as placed, in minor units")
    refunded_minor: int = Field(description="Refunded of them while they went on: units not shipped, returns")
    net_minor: int = Field(description="gross_minor - refunded_minor")
    cancelled_orders: int
    cancelled_minor: int = Field(description="Value of the cancelled orders as placed")
    rejected_orders: int
    rejected_minor: int = Field(description="Value of the rejected orders as placed")

    @classmethod
    def of(cls, figures: Figures) -> "SalesFiguresView":
        return cls(
            orders=figures.orders,
            units=figures.units,
            gross_minor=figures.gross_minor,
            refunded_minor=figures.refunded_minor,
            net_minor=figures.net_minor,
            cancelled_orders=figures.cancelled_orders,
            cancelled_minor=figures.cancelled_minor,
            rejected_orders=figures.rejected_orders,
            rejected_minor=figures.rejected_minor,
        )


class SalesBucketView(SalesFiguresView):
    bucket: str = Field(
        description="The bucket's first day (ISO date; a week starts on Monday), its channel or its sku"
    )
    currency: str

    @classmethod
    def of_bucket(cls, bucket: Bucket) -> "SalesBucketView":
        return cls(bucket=bucket.key, currency=bucket.currency, **SalesFiguresView.of(bucket.figures).model_dump())


class SalesTotalView(SalesFiguresView):
    currency: str


class TopSkuView(BaseModel):
    sku: str
    currency: str
    orders: int = Field(description="Orders holding the sku (not cancelled or rejected)")
    units: int
    gross_minor: int
    refunded_minor: int
    net_minor: int


class SalesReportView(BaseModel):
    start: datetime = Field(description="The period's start (inclusive)")
    end: datetime = Field(description="The period's end (exclusive)")
    tz: str
    group_by: GroupBy
    channel: str | None
    currency: str | None
    buckets: list[SalesBucketView] = Field(description="Per bucket and currency, by bucket then currency")
    totals: list[SalesTotalView] = Field(description="The whole period, per currency")
    top_skus: list[TopSkuView] = Field(description="Per currency, the skus that sold most units")


CSV_COLUMNS = ("bucket", "currency", *SalesFiguresView.model_fields)


@dataclass(frozen=True)
class SalesQuery:
    period: Period
    group_by: GroupBy
    channel: str | None = None
    currency: str | None = None
    top: int = 10


class SalesReports:
    def __init__(self, db: Database, facts: SalesFacts | None = None) -> None:
        self._db = db
        self._facts = facts or SalesFacts()

    async def report(self, query: SalesQuery) -> SalesReportView:
        period, filters = query.period, {"channel": query.channel, "currency": query.currency}
        async with self._db.transaction() as session:
            day_rows = await self._facts.by_day(session, period.start, period.end, period.tz, **filters)
            sku_rows = await self._facts.by_sku(session, period.start, period.end, **filters)
        return SalesReportView(
            start=period.start,
            end=period.end,
            tz=period.tz,
            group_by=query.group_by,
            channel=query.channel,
            currency=query.currency,
            buckets=[
                SalesBucketView.of_bucket(b)
                for b in buckets(sku_rows if query.group_by is GroupBy.SKU else day_rows, query.group_by)
            ],
            # From the orders, not their lines: an order of two skus is one order.
            totals=[
                SalesTotalView(currency=currency, **SalesFiguresView.of(figures).model_dump())
                for currency, figures in totals(day_rows).items()
            ],
            top_skus=[
                TopSkuView(
                    sku=b.key,
                    currency=b.currency,
                    orders=b.figures.orders,
                    units=b.figures.units,
                    gross_minor=b.figures.gross_minor,
                    refunded_minor=b.figures.refunded_minor,
                    net_minor=b.figures.net_minor,
                )
                for b in top_skus(sku_rows, query.top)
            ],
        )
