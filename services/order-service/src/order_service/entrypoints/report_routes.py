"""The sales report over HTTP: `GET /reports/sales`, as JSON or CSV.

ops keys see every channel; a channel key sees its own channel's sales only (asking for another channel
is a 403). Bad parameters are a 422 naming the field (the app's handlers, `oms_runtime.http_api`).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from oms_events.values import Channel, CurrencyCode
from oms_runtime.http_api import ErrorBody, Principal, Role
from oms_runtime.reports import (
    CSV_RESPONSE,
    PeriodEnd,
    PeriodStart,
    ReportFormat,
    TimeZoneName,
    csv_response,
    report_period,
    wants_csv,
)
from order_service.domain.sales import GroupBy
from order_service.entrypoints.auth import Authenticator, forbidden
from order_service.sales_report import CSV_COLUMNS, MAX_TOP_SKUS, SalesQuery, SalesReports, SalesReportView


def report_router(reports: SalesReports, auth: Authenticator) -> APIRouter:
    router = APIRouter(tags=["reports"])
    sales_key = auth.dependency(roles=frozenset({Role.CHANNEL}))
    errors: dict[int | str, dict[str, Any]] = {
        200: CSV_RESPONSE,
        403: {"model": ErrorBody},
        422: {"model": ErrorBody},
        503: {"model": ErrorBody},
    }

    @router.get("/reports/sales", operation_id="getSalesReport", response_model=SalesReportView, responses=errors)
    async def sales_report(
        request: Request,
        principal: Annotated[Principal, Depends(sales_key)],
        start: PeriodStart = None,
        end: PeriodEnd = None,
        group_by: Annotated[GroupBy, Query(description="Buckets: day, week (from Monday), month, channel or sku")] = (
            GroupBy.DAY
        ),
        currency: Annotated[CurrencyCode | None, Query(description="Only this currency (ISO 4217)")] = None,
        channel: Annotated[Channel | None, Query(description="Only this sales channel")] = None,
        tz: TimeZoneName = "UTC",
        top: Annotated[int, Query(ge=1, le=MAX_TOP_SKUS, description="Top skus per currency")] = 10,
        format_: ReportFormat = None,
    ) -> SalesReportView | Response:
        """Orders, units, gross, refunded and net value per bucket and currency of the orders placed in the
        period; cancelled and rejected orders counted apart; totals per currency and the top skus.
        Amounts are in minor units. A channel key sees its own channel only."""
        if not principal.is_ops:
            if channel is not None and channel.value != principal.channel:
                raise forbidden(f"This key reads {principal.channel} sales only.")
            channel = Channel(principal.channel or "")
        period = report_period(start, end, tz)
        report = await reports.report(
            SalesQuery(
                period=period,
                group_by=group_by,
                channel=channel.value if channel is not None else None,
                currency=currency,
                top=top,
            )
        )
        if wants_csv(format_, request.headers.get("accept")):
            name = f"sales-by-{group_by.value}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"
            return csv_response(CSV_COLUMNS, (b.model_dump() for b in report.buckets), name)
        return report

    return router
