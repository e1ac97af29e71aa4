"""The planning routes (forecast, reorder suggestion, days of cover) over HTTP, on the real PostgreSQL."""

import math
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import delete, insert

from inventory_service.adapters.planning_tables import daily_demand, demand_orders
from inventory_service.adapters.sales_history import SalesHistory
from inventory_service.adapters.tables import metadata, stock_levels, warehouses
from inventory_service.domain.forecasting import forecast_demand, reorder_point
from inventory_service.entrypoints.planning_routes import ForecastCache, planning_router
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator, install_error_handlers
from oms_runtime.testing import throwaway_schema

OPS_KEY = "test-ops-key-0123456789"
WAREHOUSE_KEY = "test-warehouse-key-0123456789"
AUTH = ApiKeyAuthenticator.from_json(
    f'[{{"name": "ops", "key": "{OPS_KEY}", "role": "ops"}},'
    f' {{"name": "wh", "key": "{WAREHOUSE_KEY}", "role": "warehouse"}}]'
)
TODAY = date(2026, 3, 16)  # a Monday
YESTERDAY = TODAY - timedelta(days=1)
WEEKLY = (-4, -2, 0, 1, 3, 6, -4)  # Monday first


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_planning", metadata) as database:
        async with database.transaction() as session:
            await session.execute(
                insert(warehouses),
                [
                    {"warehouse_id": "WH-BER", "name": "Berlin", "location": "Berlin, DE"},
                    {"warehouse_id": "WH-LON", "name": "London", "location": "London, GB"},
                ],
            )
        yield database


@pytest_asyncio.fixture
async def empty(db: Database) -> Database:
    async with db.transaction() as session:
        for table in (daily_demand, demand_orders, stock_levels):
            await session.execute(delete(table))
    return db


def app_for(db: Database) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(planning_router(db, AUTH, today=lambda: TODAY))
    return app


@pytest_asyncio.fixture
async def client(empty: Database) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(empty))
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers={"X-API-Key": OPS_KEY}) as http:
        yield http


async def sell(db: Database, sku: str, per_day: dict[date, int]) -> None:
    async with db.transaction() as session:
        for day, units in per_day.items():
            if units > 0:
                await SalesHistory().record_order(session, uuid4(), day, [(sku, units)])


async def stock(db: Database, sku: str, levels: dict[str, tuple[int, int]]) -> None:
    async with db.transaction() as session:
        await session.execute(
            insert(stock_levels),
            [{"sku": sku, "warehouse_id": wh, "on_hand": on, "reserved": res} for wh, (on, res) in levels.items()],
        )


def weekly_sales(weeks: int, level: int = 20) -> dict[date, int]:
    first = YESTERDAY - timedelta(days=weeks * 7 - 1)
    return {first + timedelta(days=i): level + WEEKLY[(first + timedelta(days=i)).weekday()] for i in range(weeks * 7)}


def field_names(response: httpx.Response) -> list[str]:
    body: dict[str, Any] = response.json()
    assert body["error"] == "validation_failed", body
    return [f["field"] for f in body["fields"]]


async def test_the_forecast_of_a_sku_with_weeks_of_history(empty: Database, client: httpx.AsyncClient) -> None:
    sales = weekly_sales(10)
    await sell(empty, "SKU-A", sales)

    response = await client.get("/skus/SKU-A/forecast")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "holt_winters"
    assert body["fallback_reason"] is None
    assert body["history_days"] == 70
    assert body["history_end"] == YESTERDAY.isoformat()
    assert body["forecast_start"] == TODAY.isoformat()
    assert body["horizon_days"] == 28
    days = body["daily"]
    assert [d["day"] for d in days] == [(TODAY + timedelta(days=i)).isoformat() for i in range(28)]
    # A pattern without noise is forecast almost exactly: Monday (today) is level - 4, Saturday level + 6.
    assert days[0]["units"] == pytest.approx(16, abs=0.5)
    assert days[5]["units"] == pytest.approx(26, abs=0.5)
    assert body["mean_daily_demand"] == pytest.approx(20, abs=0.5)


async def test_a_late_order_for_a_past_day_changes_the_forecast(empty: Database, client: httpx.AsyncClient) -> None:
    sales = weekly_sales(5)
    await sell(empty, "SKU-A", sales)
    before = (await client.get("/skus/SKU-A/forecast", params={"horizon_days": 7})).json()
    again = (await client.get("/skus/SKU-A/forecast", params={"horizon_days": 7})).json()

    await sell(empty, "SKU-A", {YESTERDAY - timedelta(days=2): 70})
    after = (await client.get("/skus/SKU-A/forecast", params={"horizon_days": 7})).json()

    assert again == before
    assert after["mean_daily_demand"] > before["mean_daily_demand"]
    assert after["residual_std"] > before["residual_std"]


def test_the_forecast_cache_keeps_the_recently_used_and_keys_by_the_history() -> None:
    sales = weekly_sales(3)
    keyed = ForecastCache()
    first = keyed.forecast("SKU-A", sales, YESTERDAY, 7)
    assert keyed.forecast("SKU-A", dict(sales), YESTERDAY, 7) is first
    assert keyed.forecast("SKU-A", sales, YESTERDAY, 8) is not first
    assert keyed.forecast("SKU-A", {**sales, YESTERDAY: 99}, YESTERDAY, 7) is not first
    assert keyed.forecast("SKU-B", sales, YESTERDAY, 7) is not first

    cache = ForecastCache(size=2)
    first = cache.forecast("SKU-A", sales, YESTERDAY, 7)
    cache.forecast("SKU-B", sales, YESTERDAY, 7)
    assert cache.forecast("SKU-A", sales, YESTERDAY, 7) is first  # used again: SKU-B is now the oldest
    cache.forecast("SKU-C", sales, YESTERDAY, 7)
    assert cache.forecast("SKU-A", sales, YESTERDAY, 7) is first
    cache.forecast("SKU-D", sales, YESTERDAY, 7)
    cache.forecast("SKU-E", sales, YESTERDAY, 7)
    evicted = cache.forecast("SKU-A", sales, YESTERDAY, 7)
    assert evicted is not first
    assert evicted == first


async def test_todays_orders_count_only_when_asked_for(empty: Database, client: httpx.AsyncClient) -> None:
    await sell(empty, "SKU-NEW", {TODAY: 6})

    default = (await client.get("/skus/SKU-NEW/forecast", params={"horizon_days": 7})).json()
    through_today = (
        await client.get("/skus/SKU-NEW/forecast", params={"horizon_days": 7, "through": TODAY.isoformat()})
    ).json()

    assert (default["method"], default["mean_daily_demand"], default["fallback_reason"]) == (
        "no_history",
        0.0,
        "no sales recorded",
    )
    assert through_today["method"] == "recent_mean"
    assert through_today["history_days"] == 1
    assert [d["units"] for d in through_today["daily"]] == [6.0] * 7
    assert through_today["forecast_start"] == (TODAY + timedelta(days=1)).isoformat()
    assert "shorter than 14" in through_today["fallback_reason"]


async def test_the_reorder_suggestion_is_the_domains_answer(empty: Database, client: httpx.AsyncClient) -> None:
    sales = weekly_sales(6)
    sales[YESTERDAY - timedelta(days=3)] += 9  # some noise, so that the safety stock is not zero
    sales[YESTERDAY - timedelta(days=11)] -= 5
    await sell(empty, "SKU-A", sales)

    response = await client.get("/skus/SKU-A/reorder-suggestion", params={"lead_time_days": 10, "service_level": 0.98})

    assert response.status_code == 200, response.text
    body = response.json()
    expected = reorder_point(forecast_demand("SKU-A", sales, end=YESTERDAY, horizon_days=10), 10, 0.98)
    assert body["reorder_point"] == expected.reorder_point
    assert body["safety_stock"] == pytest.approx(expected.safety_stock)
    assert body["safety_stock"] > 0
    assert body["lead_time_demand"] == pytest.approx(expected.lead_time_demand)
    assert body["reorder_point"] == math.ceil(body["lead_time_demand"] + body["safety_stock"])
    assert (body["lead_time_days"], body["service_level"], body["method"]) == (10, 0.98, "holt_winters")

    default_level = (await client.get("/skus/SKU-A/reorder-suggestion", params={"lead_time_days": 10})).json()
    assert default_level["service_level"] == 0.95
    assert default_level["reorder_point"] <= body["reorder_point"]


async def test_days_of_cover_sorted_fewest_first(empty: Database, client: httpx.AsyncClient) -> None:
    month = [YESTERDAY - timedelta(days=i) for i in range(30)]
    await stock(empty, "SKU-A", {"WH-BER": (50, 10), "WH-LON": (50, 10)})  # 80 available
    await sell(empty, "SKU-A", dict.fromkeys(month, 4))  # 20 days
    await stock(empty, "SKU-B", {"WH-BER": (30, 0)})
    await sell(empty, "SKU-B", dict.fromkeys(month, 10))  # 3 days
    await stock(empty, "SKU-C", {"WH-LON": (5, 5)})  # nothing sells: no bound
    await sell(empty, "SKU-D", dict.fromkeys(month, 2))  # sells, but no stock anywhere: 0 days

    response = await client.get("/reports/days-of-cover")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["history_end"] == YESTERDAY.isoformat()
    rows = [(r["sku"], r["available"], r["mean_daily_demand"], r["days_of_cover"]) for r in body["skus"]]
    assert rows == [
        ("SKU-D", 0, pytest.approx(2.0), 0.0),
        ("SKU-B", 30, pytest.approx(10.0), pytest.approx(3.0)),
        ("SKU-A", 80, pytest.approx(4.0), pytest.approx(20.0)),
        ("SKU-C", 0, 0.0, None),
    ]
    limited = (await client.get("/reports/days-of-cover", params={"limit": 2})).json()
    assert [r["sku"] for r in limited["skus"]] == ["SKU-D", "SKU-B"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/skus/SKU-A/forecast", {"horizon_days": 0}, "horizon_days"),
        ("/skus/SKU-A/forecast", {"horizon_days": "soon"}, "horizon_days"),
        ("/skus/SKU-A/forecast", {"horizon_days": 366}, "horizon_days"),
        ("/skus/SKU-A/forecast", {"through": "yesterday"}, "through"),
        ("/skus/SKU-A/forecast", {"through": (TODAY + timedelta(days=1)).isoformat()}, "through"),
        ("/skus/bad sku!/forecast", {}, "sku"),
        ("/skus/SKU-A/reorder-suggestion", {}, "lead_time_days"),
        ("/skus/SKU-A/reorder-suggestion", {"lead_time_days": 0}, "lead_time_days"),
        ("/skus/SKU-A/reorder-suggestion", {"lead_time_days": 5, "service_level": 1}, "service_level"),
        ("/skus/SKU-A/reorder-suggestion", {"lead_time_days": 5, "service_level": 0.3}, "service_level"),
        ("/reports/days-of-cover", {"limit": 0}, "limit"),
    ],
)
async def test_a_bad_parameter_is_a_422_naming_it(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], field: str
) -> None:
    response = await client.get(path, params=params)

    assert response.status_code == 422, response.text
    assert field_names(response) == [field]


async def test_planning_needs_an_ops_key(client: httpx.AsyncClient) -> None:
    for path in ("/skus/SKU-A/forecast", "/skus/SKU-A/reorder-suggestion?lead_time_days=3", "/reports/days-of-cover"):
        anonymous = await client.get(path, headers={"X-API-Key": ""})
        warehouse = await client.get(path, headers={"X-API-Key": WAREHOUSE_KEY})
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthenticated")
        assert (warehouse.status_code, warehouse.json()["error"]) == (403, "forbidden")


async def test_a_database_that_cannot_answer_is_a_503() -> None:
    unreachable = Database("postgresql+asyncpg://oms:oms@127.0.0.1:9/oms", schema="nowhere", pool_size=1)
    transport = httpx.ASGITransport(app=app_for(unreachable), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": OPS_KEY}) as http:
            response = await http.get("/skus/SKU-A/forecast")
    finally:
        await unreachable.dispose()

    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
