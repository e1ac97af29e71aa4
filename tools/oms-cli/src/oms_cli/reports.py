"""`oms report sales` and `oms report fulfilment`: the services' reports as tables (or their CSV files).

Both call the documented report routes (order-service's `GET /reports/sales`, fulfilment-service's
`GET /reports/fulfilment`) with the operator's key; the figures are the API's, only laid out here.
Amounts stay in minor units, as the API gives them: the CLI does not guess a currency's decimals.
"""

import asyncio
import os
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from oms_cli import api

report_app = typer.Typer(help="Reports: sales (order-service) and fulfilment performance.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)

Start = Annotated[
    str | None, typer.Option("--from", help="a date (YYYY-MM-DD) or an ISO date-time; default: 30 days before --to")
]
End = Annotated[str | None, typer.Option("--to", help="a date (included) or an ISO date-time; default: today")]
Tz = Annotated[str, typer.Option("--tz", help="the IANA time zone days are counted in")]
Csv = Annotated[bool, typer.Option("--csv", help="print the report's CSV file instead of tables")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="an ops key (a channel or warehouse key: its part)")]


def _get(url: str, key: str | None, path: str, params: dict[str, Any]) -> httpx.Response:
    async def fetch() -> httpx.Response:
        async with api.client(url, key or os.environ.get("OMS_API_KEY"), err) as http:
            return await http.get(path, params={k: v for k, v in params.items() if v is not None})

    try:
        response = asyncio.run(fetch())
    except httpx.HTTPError as exc:
        err.print(f"[red]{url} did not answer: {exc}[/red]")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        api.fail(response, err)
    return response


def amount(minor: int) -> str:
    return f"{minor:,}"


def duration(seconds: float | None) -> str:
    """`45s`, `12m05s`, `3h07m`, `2d04h`; `-` when there is nothing to measure."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _period(body: dict[str, Any]) -> str:
    return f"{body['start'][:19]} to {body['end'][:19]} ({body['tz']})"


@report_app.command("sales")
def sales(
    start: Start = None,
    end: End = None,
    group_by: Annotated[str, typer.Option("--group-by", help="day, week, month, channel or sku")] = "day",
    currency: Annotated[str | None, typer.Option(help="only this currency (ISO 4217)")] = None,
    channel: Annotated[str | None, typer.Option(help="only this sales channel")] = None,
    tz: Tz = "UTC",
    top: Annotated[int, typer.Option(min=1, max=100, help="top skus per currency")] = 10,
    csv: Csv = False,
    api_url: Annotated[str | None, typer.Option("--api-url", help="order-service (env OMS_API_URL)")] = None,
    api_key: ApiKey = None,
) -> None:
    """Orders, units, gross, refunded and net value per bucket and currency; cancelled and rejected apart."""
    url = api_url or os.environ.get("OMS_API_URL", api.ORDER_SERVICE_URL)
    params = {"from": start, "to": end, "group_by": group_by, "currency": currency, "channel": channel, "tz": tz}
    response = _get(url, api_key, "/reports/sales", {**params, "top": top, "format": "csv" if csv else None})
    if csv:
        console.out(response.text, end="", highlight=False)
        return
    body = response.json()
    scope = f", channel {body['channel']}" if body["channel"] else ""
    table = Table(title=f"Sales by {body['group_by']}, {_period(body)}{scope}", caption="amounts in minor units")
    for column in ("bucket", "currency", "orders", "units", "gross", "refunded", "net", "cancelled", "rejected"):
        table.add_column(column, justify="left" if column in ("bucket", "currency") else "right")
    for b in body["buckets"]:
        table.add_row(*_sales_cells(b["bucket"], b))
    for t in body["totals"]:
        table.add_row(*_sales_cells("total", t), style="bold")
    console.print(table if body["buckets"] else "no orders placed in the period")
    if body["top_skus"]:
        skus = Table(title="Top skus (units)")
        for column in ("currency", "sku", "orders", "units", "net"):
            skus.add_column(column, justify="left" if column in ("currency", "sku") else "right")
        for s in body["top_skus"]:
            skus.add_row(s["currency"], s["sku"], str(s["orders"]), str(s["units"]), amount(s["net_minor"]))
        console.print(skus)


def _sales_cells(bucket: str, f: dict[str, Any]) -> list[str]:
    return [
        bucket,
        f["currency"],
        str(f["orders"]),
        str(f["units"]),
        amount(f["gross_minor"]),
        amount(f["refunded_minor"]),
        amount(f["net_minor"]),
        f"{f['cancelled_orders']} ({amount(f['cancelled_minor'])})",
        f"{f['rejected_orders']} ({amount(f['rejected_minor'])})",
    ]


FULFILMENT_COLUMNS = (
    "bucket",
    "shipments",
    "shipped",
    "delivered",
    "placed→shipped p50",
    "placed→shipped p90",
    "shipped→delivered p50",
    "shipped→delivered p90",
    "on time",
    "late",
    "overdue",
    "short picks",
    "failed",
    "returns",
)


@report_app.command("fulfilment")
def fulfilment(
    start: Start = None,
    end: End = None,
    group_by: Annotated[str, typer.Option("--group-by", help="day, warehouse, carrier or delivery_method")] = "day",
    warehouse: Annotated[str | None, typer.Option(help="only this warehouse")] = None,
    tz: Tz = "UTC",
    csv: Csv = False,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="fulfilment-service (env OMS_FULFILMENT_URL)")
    ] = None,
    api_key: ApiKey = None,
) -> None:
    """Shipments, placed-to-shipped and shipped-to-delivered p50/p90, on-time rate, late, short, failed, returns."""
    url = api_url or os.environ.get("OMS_FULFILMENT_URL", api.FULFILMENT_SERVICE_URL)
    params = {"from": start, "to": end, "group_by": group_by, "warehouse": warehouse, "tz": tz}
    response = _get(url, api_key, "/reports/fulfilment", {**params, "format": "csv" if csv else None})
    if csv:
        console.out(response.text, end="", highlight=False)
        return
    body = response.json()
    scope = f", warehouse {body['warehouse_id']}" if body["warehouse_id"] else ""
    table = Table(title=f"Fulfilment by {body['group_by']}, {_period(body)}{scope}")
    for column in FULFILMENT_COLUMNS:
        table.add_column(column, justify="left" if column == "bucket" else "right")
    for b in body["buckets"]:
        table.add_row(*_fulfilment_cells(b["bucket"], b))
    if body["buckets"]:
        table.add_row(*_fulfilment_cells("total", body["total"]), style="bold")
    console.print(table if body["buckets"] else "no shipments created in the period")


def _fulfilment_cells(bucket: str, f: dict[str, Any]) -> list[str]:
    return [
        bucket,
        str(f["shipments"]),
        str(f["shipped"]),
        str(f["delivered"]),
        duration(f["placed_to_shipped_p50_s"]),
        duration(f["placed_to_shipped_p90_s"]),
        duration(f["shipped_to_delivered_p50_s"]),
        duration(f["shipped_to_delivered_p90_s"]),
        rate(f["on_time_rate"]),
        str(f["late_shipments"]),
        str(f["overdue_shipments"]),
        f"{f['short_picks']} ({f['short_units']} units)",
        str(f["failed_shipments"]),
        rate(f["returns_rate"]),
    ]
