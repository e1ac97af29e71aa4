"""Demand forecasting on synthetic series with a known level, trend and weekly pattern, and the reorder
point and days of cover derived from it."""

import math
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pytest

from inventory_service.domain.forecasting import (
    Forecast,
    ForecastMethod,
    daily_series,
    days_of_cover,
    forecast_demand,
    forecast_series,
    reorder_point,
)

START = date(2026, 1, 5)  # a Monday
LEVEL = 30.0
TREND_PER_DAY = 0.1
# Mean zero over the week; a strong weekend peak, as shops see it.
WEEKLY = np.array([-8.0, -4.0, 0.0, 3.0, 6.0, 12.0, -9.0])
NOISE_SD = 2.0
FIT_WEEKS = 16
TEST_DAYS = 14


def synthetic(days: int, seed: int) -> npt.NDArray[np.float64]:
    """Level + linear trend + weekly pattern + Gaussian noise, in whole units, never negative."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    truth = LEVEL + TREND_PER_DAY * t + WEEKLY[t % 7]
    noisy: npt.NDArray[np.float64] = np.maximum(np.round(truth + rng.normal(0.0, NOISE_SD, days)), 0.0)
    return noisy


def as_sales(series: npt.NDArray[np.float64], first: date = START) -> dict[date, int]:
    return {first + timedelta(days=i): int(v) for i, v in enumerate(series)}


def mape(actual: npt.NDArray[np.float64], predicted: npt.ArrayLike) -> float:
    return float(np.mean(np.abs(actual - np.asarray(predicted)) / actual))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_holt_winters_forecasts_a_trending_weekly_series_within_ten_percent_mape(seed: int) -> None:
    # The noise alone costs about E|N(0, 2)| / level = 1.6 / ~40 = 4% MAPE on the test weeks; 10% leaves
    # room for estimation error, while a forecast that missed the weekly pattern would be off by its mean
    # absolute size, 6 / ~40 = 15% (checked below against a naive mean).
    series = synthetic(FIT_WEEKS * 7 + TEST_DAYS, seed)
    history, actual = series[: FIT_WEEKS * 7], series[FIT_WEEKS * 7 :]
    end = START + timedelta(days=len(history) - 1)

    forecast = forecast_demand("SKU-1", as_sales(history), end=end, horizon_days=TEST_DAYS)

    assert forecast.method is ForecastMethod.HOLT_WINTERS
    assert forecast.fallback_reason is None
    assert forecast.history_days == FIT_WEEKS * 7
    assert forecast.start == end + timedelta(days=1)
    assert forecast.horizon_days == TEST_DAYS
    assert mape(actual, forecast.daily) < 0.10
    # The one-step error is the noise (plus rounding), not the weekly swing.
    assert 1.0 < forecast.residual_std < 3.5


def test_a_seasonal_series_beats_the_naive_mean_forecast() -> None:
    series = synthetic(FIT_WEEKS * 7 + TEST_DAYS, seed=7)
    history, actual = series[: FIT_WEEKS * 7], series[FIT_WEEKS * 7 :]

    forecast = forecast_series("SKU-1", history, START + timedelta(days=len(history)), TEST_DAYS)
    naive = np.full(TEST_DAYS, history[-28:].mean())

    assert mape(actual, forecast.daily) < 0.5 * mape(actual, naive)
    # The weekend peak is forecast on the right weekday: Saturdays are the highest days.
    saturday = (5 - forecast.start.weekday()) % 7
    assert int(np.argmax(forecast.daily[:7])) == saturday


def test_a_medium_history_uses_the_damped_trend_without_seasonality() -> None:
    history = synthetic(21, seed=4)

    forecast = forecast_series("SKU-1", history, START + timedelta(days=21), 7)

    assert forecast.method is ForecastMethod.DAMPED_TREND
    assert forecast.fallback_reason is None
    assert forecast.history_days == 21
    assert abs(forecast.mean_daily_demand - history.mean()) < 0.25 * history.mean()


def test_a_short_history_uses_the_mean_fallback_and_says_so() -> None:
    sales = {date(2026, 3, 1): 4, date(2026, 3, 3): 8}  # the 2nd sold nothing

    forecast = forecast_demand("SKU-NEW", sales, end=date(2026, 3, 5), horizon_days=10)

    assert forecast.method is ForecastMethod.RECENT_MEAN
    assert forecast.fallback_reason is not None
    assert "shorter than 14" in forecast.fallback_reason
    # Five days from the first sale to the end, the empty days as zeros: (4 + 0 + 8 + 0 + 0) / 5.
    assert forecast.history_days == 5
    assert forecast.daily == (2.4,) * 10
    assert forecast.mean_daily_demand == pytest.approx(2.4)
    assert forecast.residual_std == pytest.approx(float(np.std([4, 0, 8, 0, 0], ddof=1)))
    assert forecast.start == date(2026, 3, 6)


def test_a_single_day_of_history_takes_the_poisson_spread() -> None:
    forecast = forecast_demand("SKU-NEW", {date(2026, 3, 5): 9}, end=date(2026, 3, 5), horizon_days=3)

    assert forecast.method is ForecastMethod.RECENT_MEAN
    assert forecast.daily == (9.0, 9.0, 9.0)
    assert forecast.residual_std == pytest.approx(3.0)


def test_no_history_is_zero_demand_with_a_flag() -> None:
    forecast = forecast_demand("SKU-NONE", {}, end=date(2026, 3, 5), horizon_days=7)

    assert forecast.method is ForecastMethod.NO_HISTORY
    assert forecast.fallback_reason == "no sales recorded"
    assert forecast.daily == (0.0,) * 7
    assert forecast.mean_daily_demand == 0.0
    assert forecast.history_days == 0
    assert days_of_cover(50, forecast.mean_daily_demand) is None
    suggestion = reorder_point(forecast, lead_time_days=5, service_level=0.95)
    assert suggestion.reorder_point == 0
    assert suggestion.safety_stock == 0.0


def test_an_all_zero_history_gives_zero_demand_and_no_division_error() -> None:
    forecast = forecast_series("SKU-DEAD", np.zeros(60), date(2026, 3, 1), 14)

    assert forecast.mean_daily_demand == 0.0
    assert forecast.daily == (0.0,) * 14
    assert forecast.residual_std == 0.0
    assert forecast.history_days == 60
    assert forecast.fallback_reason == "history is constant"
    assert days_of_cover(10, forecast.mean_daily_demand) is None
    assert reorder_point(forecast, 7, 0.99).reorder_point == 0


def test_sales_after_the_history_end_are_ignored_and_missing_days_are_zero() -> None:
    sales = {date(2026, 3, 2): 3, date(2026, 3, 5): 2, date(2026, 3, 9): 100}

    series = daily_series(sales, end=date(2026, 3, 6))

    assert series.tolist() == [3.0, 0.0, 0.0, 2.0, 0.0]
    assert daily_series(sales, end=date(2026, 3, 6), start=date(2026, 3, 4)).tolist() == [0.0, 2.0, 0.0]
    assert daily_series(sales, end=date(2026, 3, 1)).tolist() == []


def test_forecasts_are_never_negative_on_a_falling_series() -> None:
    history = np.maximum(60.0 - 2.0 * np.arange(30), 0.0)

    forecast = forecast_series("SKU-FADING", history, date(2026, 3, 1), 60)

    assert min(forecast.daily) >= 0.0


def test_a_bad_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        forecast_demand("SKU-1", {}, end=date(2026, 3, 1), horizon_days=0)


def constant_forecast(units_per_day: float, sigma: float, days: int = 60) -> Forecast:
    return Forecast(
        "SKU-C", ForecastMethod.RECENT_MEAN, date(2026, 3, 1), (units_per_day,) * days, units_per_day, sigma, 90
    )


def test_the_reorder_point_on_a_constant_series_is_the_lead_time_demand() -> None:
    forecast = forecast_series("SKU-C", np.full(90, 12.0), date(2026, 3, 1), 30)

    suggestion = reorder_point(forecast, lead_time_days=5, service_level=0.95)

    assert forecast.residual_std == 0.0
    assert suggestion.lead_time_demand == pytest.approx(60.0)
    assert suggestion.safety_stock == 0.0
    assert suggestion.reorder_point == 60


@pytest.mark.parametrize(("lead_time", "level"), [(1, 0.5), (4, 0.9), (7, 0.95), (14, 0.99)])
def test_the_reorder_point_is_the_closed_form(lead_time: int, level: float) -> None:
    forecast = constant_forecast(10.0, sigma=3.0)

    suggestion = reorder_point(forecast, lead_time, level)

    z = NormalDist().inv_cdf(level)
    expected_safety = z * 3.0 * math.sqrt(lead_time)
    assert suggestion.z == pytest.approx(z)
    assert suggestion.safety_stock == pytest.approx(expected_safety)
    assert suggestion.lead_time_demand == pytest.approx(10.0 * lead_time)
    assert suggestion.reorder_point == math.ceil(10.0 * lead_time + expected_safety)
    assert (suggestion.lead_time_days, suggestion.service_level) == (lead_time, level)


def test_the_reorder_point_grows_with_service_level_and_lead_time() -> None:
    forecast = forecast_series("SKU-1", synthetic(FIT_WEEKS * 7, seed=5), date(2026, 5, 1), 30)

    by_level = [reorder_point(forecast, 7, s).reorder_point for s in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)]
    by_lead = [reorder_point(forecast, days, 0.95).reorder_point for days in (1, 3, 7, 14, 28)]

    assert by_level == sorted(by_level)
    assert len(set(by_level)) == len(by_level)
    assert by_lead == sorted(by_lead)
    assert len(set(by_lead)) == len(by_lead)
    # At 50% the safety stock is zero: the reorder point is the forecast demand, rounded up.
    assert by_level[0] == math.ceil(sum(forecast.daily[:7]))


def test_the_reorder_point_refuses_inputs_it_cannot_honour() -> None:
    forecast = constant_forecast(5.0, sigma=1.0, days=7)
    with pytest.raises(ValueError, match="lead_time_days"):
        reorder_point(forecast, 0, 0.95)
    with pytest.raises(ValueError, match="service_level"):
        reorder_point(forecast, 3, 1.0)
    with pytest.raises(ValueError, match="covers 7 days"):
        reorder_point(forecast, 8, 0.95)


def test_days_of_cover() -> None:
    assert days_of_cover(100, 4.0) == 25.0
    assert days_of_cover(0, 4.0) == 0.0
    assert days_of_cover(100, 0.0) is None
