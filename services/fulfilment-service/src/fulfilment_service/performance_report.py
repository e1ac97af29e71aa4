"""The fulfilment performance report's use case: the period's shipments, added up per bucket and in total.

The database gives one record per shipment created in the period (`PerformanceFacts`); the figures are
`fulfilment_service.domain.performance`'s pure functions. The answer is the API's response body
(`PerformanceReportView`); `CSV_COLUMNS` are its CSV file's columns, one row per bucket.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from pydantic import BaseModel, Field

from fulfilment_service.adapters.performance_projection import PerformanceFacts
from fulfilment_service.domain.performance import GroupBy, Performance, percentile, performance
from oms_runtime.db import Database
from oms_runtime.reports import Period


class PerformanceFiguresView(BaseModel):
    shipments: int = Field(description="Shipments created (handed to fulfilment) in the period")
    shipped: int = Field(description="Of those, left the warehouse")
    delivered: int
    cancelled: int
    placed_to_shipped_p50_s: float | None = Field(description="Seconds from the order's placing to the shipment's")
    placed_to_shipped_p90_s: float | None
    placed_to_shipped_count: int = Field(description="Shipments these percentiles are of")
    shipped_to_delivered_p50_s: float | None
    shipped_to_delivered_p90_s: float | None
    shipped_to_delivered_count: int
    on_time_rate: float | None = Field(
        description="Delivered on or before the promised date (the estimate given when it shipped), of the delivered"
    )
    late_shipments: int = Field(description="Delivered after the promised date")
    overdue_shipments: int = Field(description="Not delivered and the promised date is past")
    short_picks: int = Field(description="Shipments that went on with fewer units than ordered")
    short_units: int = Field(description="Units those shipments lacked")
    failed_shipments: int = Field(description="None of the shipment's units were found (FulfilmentFailed)")
    shipped_units: int
    returned_units: int = Field(description="Units of these shipments that customers sent back (returns authorised)")
    returns_rate: float | None = Field(description="returned_units / shipped_units")

    @classmethod
    def of(cls, p: Performance) -> "PerformanceFiguresView":
        return cls(
            shipments=p.shipments,
            shipped=p.shipped,
            delivered=p.delivered,
            cancelled=p.cancelled,
            placed_to_shipped_p50_s=percentile(p.placed_to_shipped_s, 50),
            placed_to_shipped_p90_s=percentile(p.placed_to_shipped_s, 90),
            placed_to_shipped_count=len(p.placed_to_shipped_s),
            shipped_to_delivered_p50_s=percentile(p.shipped_to_delivered_s, 50),
            shipped_to_delivered_p90_s=percentile(p.shipped_to_delivered_s, 90),
            shipped_to_delivered_count=len(p.shipped_to_delivered_s),
            on_time_rate=p.on_time_rate,
            late_shipments=p.late,
            overdue_shipments=p.overdue,
            short_picks=p.short_picks,
            short_units=p.short_units,
            failed_shipments=p.failed,
            shipped_units=p.shipped_units,
            returned_units=p.returned_units,
            returns_rate=p.returns_rate,
        )


class PerformanceBucketView(PerformanceFiguresView):
    bucket: str = Field(
        description="A day (ISO date the shipments were created, in `tz`), warehouse, carrier or "
        "delivery method (`unassigned` for shipments without one yet)"
    )


class PerformanceReportView(BaseModel):
    start: datetime = Field(description="The period's start (inclusive)")
    end: datetime = Field(description="The period's end (exclusive)")
    tz: str
    group_by: GroupBy
    warehouse_id: str | None
    buckets: list[PerformanceBucketView]
    total: PerformanceFiguresView


CSV_COLUMNS = ("bucket", *PerformanceFiguresView.model_fields)


@dataclass(frozen=True)
class PerformanceQuery:
    period: Period
    group_by: GroupBy
    warehouse_id: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PerformanceReports:
    def __init__(
        self,
        db: Database,
        zone_of: Callable[[str], tzinfo],
        *,
        facts: PerformanceFacts | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """`zone_of(warehouse_id)`: the warehouse's time zone, where its promised dates are dated."""
        self._db = db
        self._zone_of = zone_of
        self._facts = facts or PerformanceFacts()
        self._clock = clock

    async def report(self, query: PerformanceQuery) -> PerformanceReportView:
        period = query.period
        async with self._db.transaction() as session:
            records = await self._facts.records(session, period.start, period.end, query.warehouse_id)
        buckets, total = performance(
            records, query.group_by, zone=period.zone, zone_of=self._zone_of, now=self._clock()
        )
        return PerformanceReportView(
            start=period.start,
            end=period.end,
            tz=period.tz,
            group_by=query.group_by,
            warehouse_id=query.warehouse_id,
            buckets=[
                PerformanceBucketView(bucket=key, **PerformanceFiguresView.of(figures).model_dump())
                for key, figures in buckets
            ],
            total=PerformanceFiguresView.of(total),
        )
