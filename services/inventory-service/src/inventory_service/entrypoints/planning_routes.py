"""Demand planning over HTTP (ops keys): forecasts, suggested reorder points, and days of cover.

Forecasts read complete days only: by default the history ends yesterday (UTC), because today's
partial sales would drag the level and today's weekday down. `through` moves the history's last day
(today at the latest), e.g. to see today's orders or to compare a past forecast with what happened.

The app that includes this router must install `oms_runtime.http_api.install_error_handlers`: a bad
parameter is then a 422 naming it, a failing database a 503.
"""

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import func, select

from inventory_service.adapters.sales_history import SalesHistory
from inventory_service.adapters.tables import stock_levels
from inventory_service.domain.forecasting import (
    MAX_HORIZON_DAYS,
    Forecast,
    ForecastMethod,
    daily_series,
    days_of_cover,
    forecast_series,
    reorder_point,
)
from oms_events.values import Day
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator, ErrorBody, Principal

HISTORY_DAYS = 182
"""How far back a forecast looks: 26 weeks, enough for the weekly pattern, short enough to forget old regimes."""
MAX_REPORT_ROWS = 1000
CACHED_FORECASTS = 20_000

SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Horizon = Annotated[int, Query(ge=1, le=MAX_HORIZON_DAYS, description="Days to forecast")]
Through = Annotated[
    Day | None,
    Query(description="Last day of history (UTC), today at the latest; default yesterday, the last complete day"),
]


class DailyDemand(BaseModel):
    day: date
    units: float


class ForecastView(BaseModel):
    sku: str
    method: ForecastMethod
    fallback_reason: str | None
    history_days: int
    history_end: date
    forecast_start: date
    horizon_days: int
    mean_daily_demand: float
    residual_std: float
    daily: list[DailyDemand]


class ReorderSuggestionView(BaseModel):
    sku: str
    reorder_point: int
    safety_stock: float
    lead_time_demand: float
    lead_time_days: int
    service_level: float
    z: float
    residual_std: float
    mean_daily_demand: float
    method: ForecastMethod
    fallback_reason: str | None
    history_days: int
    history_end: date


class DaysOfCoverRow(BaseModel):
    sku: str
    available: int
    mean_daily_demand: float
    days_of_cover: float | None
    """None: no demand is forecast, the stock lasts indefinitely."""
    method: ForecastMethod


class DaysOfCoverReport(BaseModel):
    history_end: date
    horizon_days: int
    skus: list[DaysOfCoverRow]
    """Fewest days of cover first; skus without forecast demand last."""


class ForecastCache:
    """Forecasts by sku, horizon and a digest of the exact daily series they were fitted on.

    A fit costs tens of milliseconds, and the history of complete days changes about once a day per
    sku, so the days-of-cover report would refit a whole catalogue on every call to get the same
    numbers. Keyed by the series itself, a cached forecast is never stale: a late order for a past day
    changes the series and so the key. Least recently used entries go first.
    """

    def __init__(self, size: int = CACHED_FORECASTS) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, date, int, bytes], Forecast] = OrderedDict()
        self._lock = threading.Lock()

    def forecast(self, sku: str, sales: Mapping[date, int], end: date, horizon_days: int) -> Forecast:
        series = daily_series(sales, end)
        key = (sku, end, horizon_days, hashlib.blake2b(series.tobytes(), digest_size=16).digest())
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
        forecast = forecast_series(sku, series, end + timedelta(days=1), horizon_days)
        with self._lock:
            self._entries[key] = forecast
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return forecast


def _today_utc() -> date:
    return datetime.now(UTC).date()


def planning_router(
    db: Database,
    auth: ApiKeyAuthenticator,
    *,
    history: SalesHistory | None = None,
    history_days: int = HISTORY_DAYS,
    today: Callable[[], date] = _today_utc,
    cache: ForecastCache | None = None,
) -> APIRouter:
    router = APIRouter(tags=["planning"])
    sales = history or SalesHistory()
    forecasts = cache or ForecastCache()
    ops_key = auth.dependency(ops_only=True)
    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        422: {"model": ErrorBody},
        503: {"model": ErrorBody},
    }

    def history_end(through: date | None) -> date:
        now = today()
        if through is None:
            return now - timedelta(days=1)
        if through > now:
            raise RequestValidationError(
                [{"loc": ("query", "through"), "msg": f"must not be after today ({now})", "type": "value_error"}]
            )
        return through

    async def forecast_one(sku: str, end: date, horizon_days: int) -> Forecast:
        async with db.transaction() as session:
            sold = await sales.history(session, sku, end - timedelta(days=history_days - 1), end)
        # Fitting is CPU work (tens of ms): off the event loop, so consumers and other requests go on.
        return await asyncio.to_thread(forecasts.forecast, sku, sold, end, horizon_days)

    @router.get("/skus/{sku}/forecast", operation_id="getSkuForecast", response_model=ForecastView, responses=errors)
    async def sku_forecast(
        sku: SkuPath,
        horizon_days: Horizon = 28,
        through: Through = None,
        principal: Annotated[Principal | None, Depends(ops_key)] = None,
    ) -> ForecastView:
        """Daily demand forecast of one sku from its order history; `method` says which model was used and
        `fallback_reason` why a simpler one was (short or no history)."""
        end = history_end(through)
        forecast = await forecast_one(sku, end, horizon_days)
        return ForecastView(
            sku=sku,
            method=forecast.method,
            fallback_reason=forecast.fallback_reason,
            history_days=forecast.history_days,
            history_end=end,
            forecast_start=forecast.start,
            horizon_days=forecast.horizon_days,
            mean_daily_demand=forecast.mean_daily_demand,
            residual_std=forecast.residual_std,
            daily=[
                DailyDemand(day=forecast.start + timedelta(days=i), units=units)
                for i, units in enumerate(forecast.daily)
            ],
        )

    @router.get(
        "/skus/{sku}/reorder-suggestion",
        operation_id="getReorderSuggestion",
        response_model=ReorderSuggestionView,
        responses=errors,
    )
    async def sku_reorder_suggestion(
        sku: SkuPath,
        lead_time_days: Annotated[int, Query(ge=1, le=MAX_HORIZON_DAYS, description="Supplier lead time in days")],
        service_level: Annotated[
            float, Query(ge=0.5, lt=1.0, description="Probability of no stock-out within a lead time")
        ] = 0.95,
        through: Through = None,
        principal: Annotated[Principal | None, Depends(ops_key)] = None,
    ) -> ReorderSuggestionView:
        """A reorder point from the forecast: demand over the lead time plus safety stock
        z(service level) * forecast error * sqrt(lead time), rounded up."""
        end = history_end(through)
        forecast = await forecast_one(sku, end, lead_time_days)
        suggestion = reorder_point(forecast, lead_time_days, service_level)
        return ReorderSuggestionView(
            sku=sku,
            reorder_point=suggestion.reorder_point,
            safety_stock=suggestion.safety_stock,
            lead_time_demand=suggestion.lead_time_demand,
            lead_time_days=suggestion.lead_time_days,
            service_level=suggestion.service_level,
            z=suggestion.z,
            residual_std=suggestion.residual_std,
            mean_daily_demand=forecast.mean_daily_demand,
            method=suggestion.method,
            fallback_reason=forecast.fallback_reason,
            history_days=forecast.history_days,
            history_end=end,
        )

    @router.get(
        "/reports/days-of-cover",
        operation_id="getDaysOfCoverReport",
        response_model=DaysOfCoverReport,
        responses=errors,
    )
    async def days_of_cover_report(
        horizon_days: Annotated[int, Query(ge=1, le=MAX_HORIZON_DAYS, description="Days the mean demand is over")] = 28,
        through: Through = None,
        limit: Annotated[int, Query(ge=1, le=MAX_REPORT_ROWS)] = 100,
        principal: Annotated[Principal | None, Depends(ops_key)] = None,
    ) -> DaysOfCoverReport:
        """Per sku: available units (on hand minus reserved, over all warehouses), mean forecast daily demand
        and days of cover, fewest days first. A sku with demand but no stock anywhere has 0 days."""
        end = history_end(through)
        async with db.transaction() as session:
            rows = await session.execute(
                select(stock_levels.c.sku, func.sum(stock_levels.c.on_hand - stock_levels.c.reserved)).group_by(
                    stock_levels.c.sku
                )
            )
            available = {sku: int(units or 0) for sku, units in rows}
            sold = await sales.histories(session, end - timedelta(days=history_days - 1), end)

        def compute() -> list[DaysOfCoverRow]:
            report = []
            for sku in sorted(available.keys() | sold.keys()):
                forecast = forecasts.forecast(sku, sold.get(sku, {}), end, horizon_days)
                units = available.get(sku, 0)
                report.append(
                    DaysOfCoverRow(
                        sku=sku,
                        available=units,
                        mean_daily_demand=forecast.mean_daily_demand,
                        days_of_cover=days_of_cover(units, forecast.mean_daily_demand),
                        method=forecast.method,
                    )
                )
            report.sort(key=lambda r: (r.days_of_cover is None, r.days_of_cover or 0.0, r.sku))
            return report[:limit]

        return DaysOfCoverReport(history_end=end, horizon_days=horizon_days, skus=await asyncio.to_thread(compute))

    return router
