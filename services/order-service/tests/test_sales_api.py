"""GET /reports/sales over HTTP: who sees what, 422s naming the field, and the CSV file.

The app is order-service's report router with the API's error handlers, in front of the real
PostgreSQL (a throwaway schema) holding the orders of `test_sales_report.scenario`.
"""

import csv
import io
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from test_sales_report import Shop, scenario

from oms_runtime.db import Database
from oms_runtime.http_api import install_error_handlers
from oms_runtime.testing import throwaway_schema
from order_service.adapters.projection import projection_metadata
from order_service.adapters.tables import metadata
from order_service.entrypoints.auth import API_KEYS_ADAPTER, Authenticator
from order_service.entrypoints.report_routes import report_router
from order_service.sales_report import CSV_COLUMNS, SalesReports

OPS = "ops-key-0123456789abcdef"
WEB = "web-key-0123456789abcdef"
WAREHOUSE = "warehouse-key-0123456789abcdef"
KEYS = [
    {"name": "ops", "key": OPS, "role": "ops"},
    {"name": "web", "key": WEB, "role": "channel", "channel": "web"},
    {"name": "wh", "key": WAREHOUSE, "role": "warehouse"},
]
WEEK = {"from": "2026-11-30", "to": "2026-12-07"}


@pytest_asyncio.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    async with throwaway_schema("test_sales_api", metadata, projection_metadata) as database:
        await scenario(Shop(database))
        yield database


@pytest_asyncio.fixture
async def api(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    auth = Authenticator(API_KEYS_ADAPTER.validate_json(json.dumps(KEYS)), "tracking-secret-0123456789")
    app.include_router(report_router(SalesReports(db), auth))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def get(api: httpx.AsyncClient, key: str | None, **params: str) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return await api.get("/reports/sales", params={**WEEK, **params}, headers=headers)


async def test_ops_see_every_channel_and_a_channel_key_only_its_own(api: httpx.AsyncClient) -> None:
    everything = (await get(api, OPS, group_by="channel")).json()
    assert [(b["bucket"], b["currency"]) for b in everything["buckets"]] == [
        ("marketplace", "EUR"),
        ("web", "EUR"),
        ("web", "SEK"),
    ]
    web = await get(api, WEB, group_by="channel")
    assert web.status_code == 200
    body = web.json()
    assert body["channel"] == "web"
    assert [(b["bucket"], b["currency"]) for b in body["buckets"]] == [("web", "EUR"), ("web", "SEK")]
    assert {t["currency"]: t["orders"] for t in body["totals"]} == {"EUR": 1, "SEK": 1}
    assert "SKU-C" not in {t["sku"] for t in body["top_skus"]}, "the marketplace's best seller is not shown"
    other = await get(api, WEB, channel="marketplace")
    assert other.status_code == 403
    assert other.json()["error"] == "forbidden"
    assert (await get(api, WAREHOUSE)).status_code == 403, "a warehouse key reads no sales"
    assert (await get(api, None)).status_code == 401
    assert (await get(api, "not-a-key-0123456789")).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-12-08", "to": "2026-12-07"}, "from"),
        ({"from": "2026-12-07T12:00:00Z", "to": "2026-12-07T11:00:00Z"}, "from"),
        ({"group_by": "year"}, "group_by"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"channel": "fax"}, "channel"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "to"),
        ({"top": "0"}, "top"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_bad_parameters_are_a_422_naming_the_field(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await get(api, OPS, **params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    assert [f["field"] for f in body["fields"]] == [field]


async def test_a_day_is_included_as_to_and_the_same_day_as_from(api: httpx.AsyncClient) -> None:
    response = await get(api, OPS, **{"from": "2026-12-07", "to": "2026-12-07"})
    assert response.status_code == 200
    assert [(b["bucket"], b["currency"]) for b in response.json()["buckets"]] == [("2026-12-07", "SEK")]


@pytest.mark.parametrize(
    ("params", "accept"),
    [({"format": "csv"}, None), ({}, "text/csv"), ({}, "application/json;q=0.5, text/csv"), ({"format": "csv"}, "*/*")],
)
async def test_csv_by_format_or_accept_has_one_row_per_bucket(
    api: httpx.AsyncClient, params: dict[str, str], accept: str | None
) -> None:
    headers = {"X-API-Key": OPS, **({"Accept": accept} if accept else {})}
    response = await api.get("/reports/sales", params={**WEEK, "group_by": "day", **params}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="sales-by-day-20261130-20261208.csv"' in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(table[0]) == CSV_COLUMNS
    as_json = (await get(api, OPS, group_by="day")).json()["buckets"]
    assert table == [{k: str(v) for k, v in b.items()} for b in as_json], "the CSV holds what the JSON does"
    assert (table[0]["bucket"], table[0]["currency"], table[0]["net_minor"]) == ("2026-11-30", "EUR", "1750")


async def test_json_unless_csv_is_preferred(api: httpx.AsyncClient) -> None:
    for accept in ("*/*", "application/json", "application/json, text/csv;q=0.9", "text/html,*/*;q=0.8"):
        response = await api.get("/reports/sales", params=WEEK, headers={"X-API-Key": OPS, "Accept": accept})
        assert response.headers["content-type"] == "application/json", accept
    response = await api.get(
        "/reports/sales", params={**WEEK, "format": "json"}, headers={"X-API-Key": OPS, "Accept": "text/csv"}
    )
    assert response.headers["content-type"] == "application/json", "format wins over Accept"
