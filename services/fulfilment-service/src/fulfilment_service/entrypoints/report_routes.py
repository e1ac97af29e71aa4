"""The fulfilment performance report over HTTP: `GET /reports/fulfilment`, as JSON or CSV.

ops and warehouse keys. A warehouse key limited to one warehouse (API_KEYS `warehouse_id`) sees that
warehouse only (asking for another is a 403); other keys see every warehouse or the one asked for. Bad
parameters are a 422 naming the field (the app's handlers, `oms_runtime.http_api`).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from fulfilment_service.domain.performance import GroupBy
from fulfilment_service.performance_report import (
    CSV_COLUMNS,
    PerformanceQuery,
    PerformanceReports,
    PerformanceReportView,
)
from oms_events.values import WarehouseId
from oms_runtime.http_api import ApiKeyAuthenticator, ErrorBody, Principal, Role
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


def report_router(reports: PerformanceReports, auth: ApiKeyAuthenticator) -> APIRouter:
    router = APIRouter(tags=["reports"])
    warehouse_key = auth.dependency(roles=frozenset({Role.WAREHOUSE}))
    responses: dict[int | str, dict[str, Any]] = {
        200: CSV_RESPONSE,
        403: {"model": ErrorBody},
        422: {"model": ErrorBody},
        503: {"model": ErrorBody},
    }

    @router.get(
        "/reports/fulfilment",
        operation_id="getFulfilmentReport",
        response_model=PerformanceReportView,
        responses=responses,
    )
    async def fulfilment_report(
        request: Request,
        principal: Annotated[Principal, Depends(warehouse_key)],
        start: PeriodStart = None,
        end: PeriodEnd = None,
        group_by: Annotated[GroupBy, Query(description="Buckets: day, warehouse, carrier or delivery_method")] = (
            GroupBy.DAY
        ),
        warehouse: Annotated[WarehouseId | None, Query(description="Only this warehouse")] = None,
        tz: TimeZoneName = "UTC",
        format_: ReportFormat = None,
    ) -> PerformanceReportView | Response:
        """Shipments created in the period: how many shipped and were delivered, placed-to-shipped and
        shipped-to-delivered p50/p90 (seconds), on-time rate against the promised date, late and overdue
        shipments, short picks, failed shipments and the returns rate, per bucket and in total. A
        warehouse key limited to one warehouse sees that warehouse only."""
        if principal.warehouse_id is not None:
            principal.require_warehouse(warehouse or principal.warehouse_id)
            warehouse = principal.warehouse_id
        period = report_period(start, end, tz)
        report = await reports.report(PerformanceQuery(period=period, group_by=group_by, warehouse_id=warehouse))
        if wants_csv(format_, request.headers.get("accept")):
            name = f"fulfilment-by-{group_by.value}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"
            return csv_response(CSV_COLUMNS, (b.model_dump() for b in report.buckets), name)
        return report

    return router
