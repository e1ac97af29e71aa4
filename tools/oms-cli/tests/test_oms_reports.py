"""`oms report sales` and `oms report fulfilment`: the request each sends and the tables it prints.

The API is mocked with bodies made by the services' own report code (views and figures), so the CLI reads
exactly the shape the routes answer; the integration tests run the CLI against the running services.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from fulfilment_service.domain.performance import GroupBy as ShipmentGroupBy
from fulfilment_service.domain.performance import ShipmentFacts, ShipmentRecord, performance
from fulfilment_service.performance_report import PerformanceBucketView, PerformanceFiguresView, PerformanceReportView
from oms_cli import api, main, reports
from order_service.domain.sales import FactRow, GroupBy, Outcome, buckets, top_skus, totals
from order_service.sales_report import SalesBucketView, SalesFiguresView, SalesReportView, SalesTotalView, TopSkuView

runner = CliRunner()
START, END = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "console", Console(width=300))
    monkeypatch.setattr(reports, "err", Console(width=300, stderr=True))
    monkeypatch.setenv("OMS_API_KEY", "ops-key-for-tests")


def serve(monkeypatch: pytest.MonkeyPatch, answer: httpx.Response) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    monkeypatch.setattr(api, "transport", httpx.MockTransport(handle))
    return seen


def sales_body() -> dict[str, Any]:
    day = date(2026, 12, 1)
    rows = [
        FactRow(
            currency="EUR", outcome=Outcome.OPEN, orders=3, units=7, gross_minor=1234567, refunded_minor=1500, day=day
        ),
        FactRow(
            currency="EUR", outcome=Outcome.CANCELLED, orders=1, units=2, gross_minor=2500, refunded_minor=0, day=day
        ),
        FactRow(
            currency="EUR", outcome=Outcome.REJECTED, orders=2, units=2, gross_minor=900, refunded_minor=0, day=day
        ),
    ]
    sku_rows = [
        FactRow(
            currency="EUR", outcome=Outcome.OPEN, orders=3, units=7, gross_minor=9000, refunded_minor=0, sku="SKU-MUG"
        )
    ]
    view = SalesReportView(
        start=START,
        end=END,
        tz="Europe/Berlin",
        group_by=GroupBy.DAY,
        channel="web",
        currency=None,
        buckets=[SalesBucketView.of_bucket(b) for b in buckets(rows, GroupBy.DAY)],
        totals=[SalesTotalView(currency=c, **SalesFiguresView.of(f).model_dump()) for c, f in totals(rows).items()],
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
            for b in top_skus(sku_rows, 10)
        ],
    )
    return view.model_dump(mode="json")


def test_sales_asks_for_the_period_and_grouping_and_prints_the_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = serve(monkeypatch, httpx.Response(200, json=sales_body()))
    args = [
        "report",
        "sales",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-07",
        "--group-by",
        "week",
        "--tz",
        "Europe/Berlin",
    ]
    result = runner.invoke(main.app, [*args, "--channel", "web", "--api-url", "http://orders.test"])
    assert result.exit_code == 0, result.output
    [request] = seen
    assert (request.url.host, request.url.path) == ("orders.test", "/reports/sales")
    assert dict(request.url.params) == {
        "from": "2026-12-01",
        "to": "2026-12-07",
        "group_by": "week",
        "channel": "web",
        "tz": "Europe/Berlin",
        "top": "10",
    }
    assert request.headers["X-API-Key"] == "ops-key-for-tests"
    out = result.output
    assert "Sales by day, 2026-12-01T00:00:00 to 2026-12-08T00:00:00 (Europe/Berlin), channel web" in out
    bucket_line = next(line for line in out.splitlines() if "2026-12-01" in line and "EUR" in line)
    # orders, units, gross, refunded, net, cancelled (value), rejected (value)
    for cell in ("3", "7", "1,234,567", "1,500", "1,233,067", "1 (2,500)", "2 (900)"):
        assert cell in bucket_line, (cell, bucket_line)
    total_line = next(line for line in out.splitlines() if "total" in line)
    assert "EUR" in total_line
    assert "1,233,067" in total_line
    assert "SKU-MUG" in out
    assert "amounts in minor units" in out


def test_sales_csv_is_the_apis_file_as_it_came(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "bucket,currency,orders\r\n2026-12-01,EUR,3\r\n"
    seen = serve(monkeypatch, httpx.Response(200, text=text, headers={"content-type": "text/csv"}))
    result = runner.invoke(main.app, ["report", "sales", "--csv"])
    assert result.exit_code == 0, result.output
    assert result.output.replace("\r\n", "\n") == text.replace("\r\n", "\n")
    assert seen[0].url.params["format"] == "csv"
    assert "from" not in seen[0].url.params, "the API's default period"


def test_a_refused_report_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "error": "validation_failed",
        "message": "Invalid fields: from",
        "fields": [{"field": "from", "message": "Value error, must not be after `to`", "type": "value_error"}],
    }
    serve(monkeypatch, httpx.Response(422, json=body))
    result = runner.invoke(main.app, ["report", "sales", "--from", "2026-12-09", "--to", "2026-12-01"])
    assert result.exit_code == 1
    assert "HTTP 422 validation_failed" in result.output
    assert "from: Value error, must not be after `to`" in result.output
    monkeypatch.delenv("OMS_API_KEY")
    assert runner.invoke(main.app, ["report", "fulfilment"]).exit_code == 2


def fulfilment_body() -> dict[str, Any]:
    t0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
    shipped = ShipmentFacts(
        shipment_id="s1",
        order_id="o1",
        warehouse_id="WH-BER",
        created_at=t0,
        units=3,
        carrier="DHL",
        shipped_at=t0 + timedelta(hours=1),
        promised_date=date(2026, 12, 4),
        shipped_units=2,
        short_units=1,
        delivered_at=t0 + timedelta(days=2, hours=2),
    )
    records = [ShipmentRecord(shipped, placed_at=t0 - timedelta(minutes=5), returned_units=1)]
    found, total = performance(
        records, ShipmentGroupBy.WAREHOUSE, zone=UTC, zone_of=lambda _: UTC, now=t0 + timedelta(days=9)
    )
    view = PerformanceReportView(
        start=START,
        end=END,
        tz="UTC",
        group_by=ShipmentGroupBy.WAREHOUSE,
        warehouse_id=None,
        buckets=[PerformanceBucketView(bucket=k, **PerformanceFiguresView.of(p).model_dump()) for k, p in found],
        total=PerformanceFiguresView.of(total),
    )
    return view.model_dump(mode="json")


def test_fulfilment_prints_times_rates_and_problems_per_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = serve(monkeypatch, httpx.Response(200, json=fulfilment_body()))
    monkeypatch.setenv("OMS_FULFILMENT_URL", "http://fulfilment.test")
    result = runner.invoke(main.app, ["report", "fulfilment", "--group-by", "warehouse", "--warehouse", "WH-BER"])
    assert result.exit_code == 0, result.output
    [request] = seen
    assert (request.url.host, request.url.path) == ("fulfilment.test", "/reports/fulfilment")
    assert (request.url.params["group_by"], request.url.params["warehouse"]) == ("warehouse", "WH-BER")
    row = next(line for line in result.output.splitlines() if "WH-BER" in line)
    # 1 shipment, shipped and delivered; 1h05m placed to shipped, 2d01h to the door; on time; short by 1;
    # 1 of 2 units returned.
    for cell in ("1h05m", "2d01h", "100.0%", "1 (1 units)", "50.0%"):
        assert cell in row, (cell, row)
    assert "total" in result.output


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (44.6, "45s"), (725, "12m05s"), (3 * 3600 + 7 * 60, "3h07m"), (2 * 86400 + 4 * 3600, "2d04h")],
)
def test_durations_read_at_a_glance(seconds: float | None, shown: str) -> None:
    assert reports.duration(seconds) == shown
