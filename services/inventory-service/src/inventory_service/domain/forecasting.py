"""Daily demand forecasting per sku, and the reorder point and days of cover derived from it. Pure: no I/O.

The model depends on how much history a sku has (days from its first recorded sale to the last
complete day; a day without sales counts as a day with 0 units):

- 28 days or more (four full weeks): Holt-Winters exponential smoothing with a damped additive trend
  and additive weekly seasonality (statsmodels `ExponentialSmoothing`, parameters estimated by
  maximum likelihood). Four weeks give the estimator at least four observations of every weekday.
- 14 to 27 days: Holt's damped additive trend, no seasonality (two weeks are too few to tell a
  weekday pattern from noise).
- 1 to 13 days: the fallback, the mean of the days there are, flat over the horizon.
- no history at all: zero demand, flagged (`Forecast.fallback_reason`), so that a caller can tell
  "sells nothing" from "we know nothing".

A constant history (e.g. all zeros) also uses the mean: there is nothing to smooth, and the
optimiser is ill-conditioned on it. A model whose fit fails or yields non-finite numbers falls back
to the mean of the last 28 days, with the reason. Forecasts are never negative.

The forecast error `residual_std` is the root mean square of the model's one-step-ahead in-sample
errors (for the mean: the sample standard deviation of the days used; for a single day, the Poisson
value sqrt(mean), since one day tells nothing about the spread).

Reorder point: demand over the lead time (the sum of the first `lead_time_days` daily forecasts)
plus safety stock `z(service level) * residual_std * sqrt(lead_time_days)`, which assumes
independent daily errors; rounded up to whole units.
"""

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.holtwinters import ExponentialSmoothing
from threadpoolctl import ThreadpoolController

SEASON_DAYS = 7
MIN_SEASONAL_DAYS = 4 * SEASON_DAYS
MIN_TREND_DAYS = 2 * SEASON_DAYS
FALLBACK_WINDOW_DAYS = 4 * SEASON_DAYS
MAX_HORIZON_DAYS = 365


_blas: ThreadpoolController | None = None


def _one_blas_thread() -> Any:
    """BLAS limited to one thread while a model is fitted.

    The fits are small and many: OpenBLAS's worker threads only contend, with other requests and with
    each other, and on a loaded 2-core machine made a fit 4 to 9 times slower (see
    deploy/local/bench_forecast.py). The controller is made once, after NumPy and SciPy are loaded;
    limiting through it then costs microseconds.
    """
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


class ForecastMethod(StrEnum):
    HOLT_WINTERS = "holt_winters"
    """Damped additive trend + additive weekly seasonality."""
    DAMPED_TREND = "damped_trend"
    """Holt's damped additive trend, no seasonality."""
    RECENT_MEAN = "recent_mean"
    """The fallback: the mean of the recent days, flat."""
    NO_HISTORY = "no_history"
    """No sales recorded: zero demand."""


@dataclass(frozen=True)
class Forecast:
    sku: str
    method: ForecastMethod
    start: date
    """The first forecast day (the day after the history's last day)."""
    daily: tuple[float, ...]
    """Point forecasts of units sold per day, from `start`, one per day of the horizon."""
    mean_daily_demand: float
    residual_std: float
    history_days: int
    fallback_reason: str | None = None
    """Why a simpler method than the history's length allows was used; None for the regular method."""

    @property
    def horizon_days(self) -> int:
        return len(self.daily)


def daily_series(sales: Mapping[date, int], end: date, start: date | None = None) -> npt.NDArray[np.float64]:
    """Units per day from `start` (default: the first day with sales) to `end`, both inclusive; a missing
    day is a day with 0 units. Sales outside the range are ignored. Empty when nothing sold by `end`."""
    if start is None:
        sold_days = [d for d, units in sales.items() if units > 0 and d <= end]
        if not sold_days:
            return np.zeros(0)
        start = min(sold_days)
    length = (end - start).days + 1
    series = np.zeros(max(length, 0))
    for day, units in sales.items():
        offset = (day - start).days
        if 0 <= offset < length:
            series[offset] += units
    return series


def forecast_demand(
    sku: str,
    sales: Mapping[date, int],
    *,
    end: date,
    horizon_days: int = 28,
    start: date | None = None,
) -> Forecast:
    """Forecasts daily demand for the `horizon_days` days after `end`, the last complete day of history.

    `sales` maps days to units sold; see `daily_series` for how the history is cut and filled.
    """
    if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise ValueError(f"horizon_days must be between 1 and {MAX_HORIZON_DAYS}, not {horizon_days}")
    return forecast_series(sku, daily_series(sales, end, start), end + timedelta(days=1), horizon_days)


def forecast_series(sku: str, history: npt.ArrayLike, start: date, horizon_days: int) -> Forecast:
    """Forecasts from a complete daily series (oldest first, zeros included) whose next day is `start`."""
    y = np.asarray(history, dtype=np.float64)
    if y.ndim != 1 or not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ValueError("history must be a flat series of non-negative finite numbers")
    n = len(y)
    if n == 0:
        return Forecast(sku, ForecastMethod.NO_HISTORY, start, (0.0,) * horizon_days, 0.0, 0.0, 0, "no sales recorded")
    if n < MIN_TREND_DAYS:
        return _mean_forecast(sku, y, start, horizon_days, f"history of {n} days is shorter than {MIN_TREND_DAYS}")
    if np.ptp(y) == 0:
        return _mean_forecast(sku, y, start, horizon_days, "history is constant")
    seasonal = n >= MIN_SEASONAL_DAYS
    try:
        points, residuals = _exponential_smoothing(y, horizon_days, seasonal)
    except (ValueError, np.linalg.LinAlgError) as exc:
        return _mean_forecast(sku, y, start, horizon_days, f"model fit failed: {exc}")
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(residuals))):
        return _mean_forecast(sku, y, start, horizon_days, "model gave non-finite values")
    daily = np.clip(points, 0.0, None)
    return Forecast(
        sku=sku,
        method=ForecastMethod.HOLT_WINTERS if seasonal else ForecastMethod.DAMPED_TREND,
        start=start,
        daily=tuple(float(v) for v in daily),
        mean_daily_demand=float(daily.mean()),
        residual_std=float(np.sqrt(np.mean(residuals**2))),
        history_days=n,
    )


def _exponential_smoothing(
    y: npt.NDArray[np.float64], horizon_days: int, seasonal: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    model = ExponentialSmoothing(
        y,
        trend="add",
        damped_trend=True,
        seasonal="add" if seasonal else None,
        seasonal_periods=SEASON_DAYS if seasonal else None,
        initialization_method="estimated",
    )
    # The optimiser warns about convergence on short or noisy series; the fit is still the best it
    # found, and the residual error it reports feeds the safety stock honestly either way.
    with warnings.catch_warnings(), _one_blas_thread():
        warnings.simplefilter("ignore")
        # No brute-force search for starting values: three times faster (24 ms instead of 73 ms on
        # a 180-day series) and the same fit on the series we measured.
        fit = model.fit(optimized=True, use_brute=False)
        points = np.asarray(fit.forecast(horizon_days), dtype=np.float64)
    residuals = np.asarray(fit.resid, dtype=np.float64)
    return points, residuals


def _mean_forecast(sku: str, y: npt.NDArray[np.float64], start: date, horizon_days: int, reason: str) -> Forecast:
    recent = y[-FALLBACK_WINDOW_DAYS:]
    mean = float(recent.mean())
    std = float(recent.std(ddof=1)) if len(recent) > 1 else math.sqrt(mean)
    return Forecast(
        sku=sku,
        method=ForecastMethod.RECENT_MEAN,
        start=start,
        daily=(mean,) * horizon_days,
        mean_daily_demand=mean,
        residual_std=std,
        history_days=len(y),
        fallback_reason=reason,
    )


@dataclass(frozen=True)
class ReorderPoint:
    sku: str
    reorder_point: int
    """Reorder when available stock falls to or below this many units."""
    safety_stock: float
    lead_time_demand: float
    lead_time_days: int
    service_level: float
    z: float
    residual_std: float
    method: ForecastMethod


def reorder_point(forecast: Forecast, lead_time_days: int, service_level: float) -> ReorderPoint:
    """Reorder point = forecast demand over the lead time + z(service level) * sigma * sqrt(lead time).

    `service_level` is the probability of not running out during one replenishment lead time
    (cycle service level), in [0.5, 1). The forecast must cover the lead time.
    """
    if lead_time_days < 1:
        raise ValueError(f"lead_time_days must be at least 1, not {lead_time_days}")
    if not 0.5 <= service_level < 1:
        raise ValueError(f"service_level must be in [0.5, 1), not {service_level}")
    if forecast.horizon_days < lead_time_days:
        raise ValueError(f"the forecast covers {forecast.horizon_days} days, the lead time is {lead_time_days}")
    z = NormalDist().inv_cdf(service_level)
    lead_time_demand = math.fsum(forecast.daily[:lead_time_days])
    safety_stock = z * forecast.residual_std * math.sqrt(lead_time_days)
    # Rounded to 1e-9 first so that float noise (10.000000000001) does not add a unit.
    units = math.ceil(round(lead_time_demand + safety_stock, 9))
    return ReorderPoint(
        sku=forecast.sku,
        reorder_point=units,
        safety_stock=safety_stock,
        lead_time_demand=lead_time_demand,
        lead_time_days=lead_time_days,
        service_level=service_level,
        z=z,
        residual_std=forecast.residual_std,
        method=forecast.method,
    )


def days_of_cover(available_units: int, mean_daily_demand: float) -> float | None:
    """How many days the available units last at the forecast rate; None when nothing is expected to sell
    (cover is unbounded)."""
    if mean_daily_demand <= 0:
        return None
    return max(available_units, 0) / mean_daily_demand
