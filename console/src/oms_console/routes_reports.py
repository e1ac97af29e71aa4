"""The reports with charts: sales (per day, per channel), fulfilment times (per warehouse), stock levels.

Each chart's data travels in the page as JSON (`<script type="application/json">`, never executed) and
`static/console.js` draws it with Chart.js; the same figures are in a table under each chart, so the
page reads without scripts and a screen reader gets the numbers.
"""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from oms_console.web import CHANNELS, Ui

Day = Annotated[str | None, Query(max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")]


def _chart(kind: str, labels: list[str], datasets: list[dict[str, Any]], y_title: str) -> str:
    return json.dumps({"type": kind, "labels": labels, "datasets": datasets, "yTitle": y_title})


def sales_charts(
    by_day: dict[str, Any] | None, by_channel: dict[str, Any] | None, currency: str | None
) -> dict[str, Any]:
    """The currency shown (the one asked for, else the one with most orders) and both charts' data."""
    totals = (by_day or {}).get("totals", [])
    shown = currency or (max(totals, key=lambda t: t["orders"])["currency"] if totals else None)
    days = [b for b in (by_day or {}).get("buckets", []) if b["currency"] == shown]
    channels = [b for b in (by_channel or {}).get("buckets", []) if b["currency"] == shown]
    if shown is None:
        return {"currency": None, "daily": None, "channels": None}
    # Major units on the axis: 12345 minor EUR is 123.45, as a person reads it.
    digits = 3 if shown in ("BHD", "KWD", "OMR", "JOD", "TND") else 0 if shown in ("JPY", "KRW", "ISK") else 2
    scale = 10**digits
    daily = _chart(
        "line",
        [b["bucket"] for b in days],
        [
            {"label": f"net ({shown})", "data": [b["net_minor"] / scale for b in days]},
            {"label": f"gross ({shown})", "data": [b["gross_minor"] / scale for b in days]},
        ],
        shown,
    )
    per_channel = _chart(
        "bar",
        [b["bucket"] for b in channels],
        [
            {"label": f"net ({shown})", "data": [b["net_minor"] / scale for b in channels]},
            {"label": "orders", "data": [b["orders"] for b in channels], "yAxisID": "y2"},
        ],
        shown,
    )
    return {"currency": shown, "daily": daily, "channels": per_channel, "days": days, "channel_rows": channels}


def fulfilment_chart(by_warehouse: dict[str, Any] | None) -> str | None:
    """Times per warehouse in one unit that suits them: seconds for a fast automated warehouse, hours for
    a day's picking (a chart of 0.00 h bars says nothing)."""
    buckets = (by_warehouse or {}).get("buckets", [])
    if not buckets:
        return None
    fields = ("placed_to_shipped_p50_s", "placed_to_shipped_p90_s", "shipped_to_delivered_p50_s")
    longest = max((b[f] for b in buckets for f in fields if b[f] is not None), default=0)
    unit, seconds = ("h", 3600) if longest >= 7200 else ("min", 60) if longest >= 120 else ("s", 1)

    def scaled(value: float | None) -> float | None:
        return None if value is None else round(value / seconds, 2)

    labels = ("placed to shipped p50", "placed to shipped p90", "shipped to delivered p50")
    return _chart(
        "bar",
        [b["bucket"] for b in buckets],
        [
            {"label": f"{label} ({unit})", "data": [scaled(b[field]) for b in buckets]}
            for label, field in zip(labels, fields, strict=True)
        ],
        {"h": "hours", "min": "minutes", "s": "seconds"}[unit],
    )


def stock_chart(warehouses: list[dict[str, Any]] | None) -> str | None:
    if not warehouses:
        return None
    return _chart(
        "bar",
        [w["warehouse_id"] for w in warehouses],
        [
            {"label": "available", "data": [w["available"] for w in warehouses], "stack": "units"},
            {"label": "reserved", "data": [w["reserved"] for w in warehouses], "stack": "units"},
        ],
        "units",
    )


def router(ui: Ui) -> APIRouter:
    routes = APIRouter()

    @routes.get("/reports")
    async def reports_index(request: Request) -> Response:
        session = ui.session(request)
        return ui.render(request, session, "reports.html", nav="reports")

    @routes.get("/reports/sales")
    async def sales(
        request: Request,
        from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
        to: Day = None,
        currency: Annotated[str | None, Query(max_length=3)] = None,
        channel: Annotated[str | None, Query(max_length=20)] = None,
    ) -> Response:
        session = ui.session(request)
        params = {"from": from_ or None, "to": to or None, "currency": currency or None, "channel": channel or None}
        params["tz"] = session.tz
        key = session.api_key
        (by_day, day_error), (by_channel, channel_error) = await ui.gather(
            session,
            ui.services.get("order-service", "/reports/sales", key, group_by="day", **params),
            ui.services.get("order-service", "/reports/sales", key, group_by="channel", **params),
        )
        return ui.render(
            request,
            session,
            "report_sales.html",
            report=by_day,
            charts=sales_charts(by_day, by_channel, currency or None),
            error=day_error or channel_error,
            filters={"from": from_, "to": to, "currency": currency, "channel": channel},
            channels=CHANNELS,
            nav="reports",
        )

    @routes.get("/reports/fulfilment")
    async def fulfilment(
        request: Request, from_: Annotated[str | None, Query(alias="from", max_length=10)] = None, to: Day = None
    ) -> Response:
        session = ui.session(request)
        report, error = await ui.attempt(
            session,
            ui.services.get(
                "fulfilment-service",
                "/reports/fulfilment",
                session.api_key,
                group_by="warehouse",
                tz=session.tz,
                **{"from": from_ or None, "to": to or None},
            ),
        )
        return ui.render(
            request,
            session,
            "report_fulfilment.html",
            report=report,
            chart_data=fulfilment_chart(report),
            error=error,
            filters={"from": from_, "to": to},
            nav="reports",
        )

    @routes.get("/reports/stock")
    async def stock(request: Request) -> Response:
        session = ui.session(request)
        key = session.api_key
        (warehouses, warehouses_error), (low, low_error) = await ui.gather(
            session,
            ui.services.get("inventory-service", "/reports/stock-by-warehouse", key),
            ui.services.get("inventory-service", "/reports/low-stock", key),
        )
        return ui.render(
            request,
            session,
            "report_stock.html",
            warehouses=warehouses or [],
            low=low or [],
            chart_data=stock_chart(warehouses),
            error=warehouses_error or low_error,
            nav="reports",
        )

    return routes
