"""The sales and fulfilment performance reports on the real system: a known set of orders is placed through
the API and worked through the warehouses and the carrier webhook; both reports (JSON, CSV and the `oms`
CLI) must give the figures this test works out by itself from what it did and from the events on the
topics (placing and shipping times, refunds paid).

Isolation from the other tests of the session: only this test pays in NOK, ships from its own warehouses,
and reads the reports from the moment it starts.
"""

import asyncio
import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from rich.console import Console
from typer.testing import CliRunner
from warehouse_steps import get_json, manual_stock, pick_pack_ship, post_json, receive_and_inspect, return_of
from warehouse_steps import shipments_by_warehouse as shipments_of

from harness import (
    CARRIER_KEY,
    CHANNEL_KEYS,
    OPS_KEY,
    REPORT_WAREHOUSE,
    REPORT_WAREHOUSE_KEY,
    WAREHOUSE_KEY,
    System,
    eventually,
    order_body,
    unique_sku,
)
from oms_cli import main as cli
from oms_cli import reports as cli_reports
from oms_events import topics

CURRENCY = "NOK"
AUTOMATIC = "WH-IT-REPORTS-AUTO"
FINAL = {"shipped", "rejected", "cancelled"}


@dataclass
class Placed:
    order_id: str
    channel: str
    lines: list[tuple[str, int, int]]

    @property
    def units(self) -> int:
        return sum(q for _, q, _ in self.lines)

    @property
    def gross(self) -> int:
        return sum(q * p for _, q, p in self.lines)


async def place(system: System, lines: list[tuple[str, int, int]], channel: str, token: str = "tok_approve") -> Placed:
    body = order_body(lines, token=token, channel=channel)
    body["currency"] = CURRENCY
    async with system.http() as http:
        response = await http.post("/orders", json=body)
    assert response.status_code == 201, response.text
    return Placed(response.json()["order_id"], channel, lines)


def percentile(values: Iterable[float], p: float) -> float | None:
    """Linear interpolation between closest ranks, written out (the report uses the stdlib's)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = p / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def when(envelope: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(envelope["occurred_at"])


async def deliver(system: System, shipped: dict[str, Any], at: datetime) -> None:
    async with system.http(CARRIER_KEY, service="fulfilment-service") as carrier:
        update = {"tracking_number": shipped["tracking_number"], "status": "delivered", "occurred_at": at.isoformat()}
        await post_json(carrier, f"/carriers/{shipped['carrier']}/updates", update)


async def test_both_reports_give_the_figures_of_a_known_set_of_orders(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    period = {"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()}
    mug, cap, lamp, vase, gone = (unique_sku(f"SKU-RP{i}") for i in range(5))
    await manual_stock(system, mug, {REPORT_WAREHOUSE: 10})
    await manual_stock(system, cap, {REPORT_WAREHOUSE: 10})
    await manual_stock(system, vase, {REPORT_WAREHOUSE: 5})
    await manual_stock(system, lamp, {AUTOMATIC: 5})

    shipped_whole = await place(system, [(mug, 2, 1_000)], "web")
    short_picked = await place(system, [(cap, 3, 500)], "marketplace")
    returned = await place(system, [(lamp, 1, 700)], "web")  # an automatic warehouse: ships at once
    declined = await place(system, [(mug, 1, 1_000)], "web", token="tok_decline_insufficient_funds")
    out_of_stock = await place(system, [(gone, 1, 300)], "web")
    cancelled = await place(system, [(cap, 1, 500)], "phone")
    nothing_found = await place(system, [(vase, 1, 400)], "store")
    orders = [shipped_whole, short_picked, returned, declined, out_of_stock, cancelled, nothing_found]

    for order in (shipped_whole, short_picked, cancelled, nothing_found):
        await system.wait_for_status(order.order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse, system.http() as ops:
        shipment = (await shipments_of(warehouse, shipped_whole.order_id, 1))[REPORT_WAREHOUSE]
        whole = await pick_pack_ship(warehouse, shipment)
        await deliver(system, whole, datetime.now(UTC))  # long before its promised date: on time

        shipment = (await shipments_of(warehouse, short_picked.order_id, 1))[REPORT_WAREHOUSE]
        short = await pick_pack_ship(warehouse, shipment, missing=1)
        promised = date.fromisoformat(short["estimated_delivery"])
        late = datetime.combine(promised + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=12)
        await deliver(system, short, late)  # the day after its promised date (the warehouse's zone is UTC)

        response = await ops.post(f"/orders/{cancelled.order_id}/cancel", json={"reason": "changed my mind"})
        assert response.status_code == 202, response.text

        shipment = (await shipments_of(warehouse, nothing_found.order_id, 1))[REPORT_WAREHOUSE]
        await post_json(warehouse, f"/shipments/{shipment['shipment_id']}/picking")
        assert (await post_json(warehouse, f"/shipments/{shipment['shipment_id']}/picks", {"lines": []}))["status"] == (
            "failed"
        )

        automatic = (await shipments_of(warehouse, returned.order_id, 1))[AUTOMATIC]
        await eventually(lambda: get_json(warehouse, f"/shipments/{automatic['shipment_id']}"), _left_warehouse)
        automatic = await get_json(warehouse, f"/shipments/{automatic['shipment_id']}")
        await deliver(system, automatic, datetime.now(UTC))
        await eventually(lambda: get_json(ops, f"/orders/{returned.order_id}/tracking"), lambda t: t["delivered"])
        response = await ops.post(
            f"/orders/{returned.order_id}/returns", json={"lines": [{"sku": lamp, "quantity": 1}], "reason": "broken"}
        )
        assert response.status_code == 202, response.text
        return_id = response.json()["return_id"]
    await receive_and_inspect(system, return_id, [{"sku": lamp, "warehouse_id": AUTOMATIC, "sellable": 0}])
    await return_of(system, returned.order_id, return_id, lambda r: r["refunded"])

    statuses = {o.order_id: (await system.wait_for_status(o.order_id, FINAL))["status"] for o in orders}
    assert [statuses[o.order_id] for o in orders] == [
        "shipped",
        "shipped",
        "shipped",
        "rejected",
        "rejected",
        "cancelled",
        "cancelled",
    ]
    await _check_sales(system, orders, statuses, period, monkeypatch)
    await _check_fulfilment(system, orders, period, late, monkeypatch)


def _left_warehouse(shipment: dict[str, Any]) -> bool:
    return shipment["status"] in ("shipped", "in_transit", "out_for_delivery", "delivered")


# ------------------------------------------------------------------------------------------ sales


def _sales_expected(
    orders: list[Placed], statuses: dict[str, str], refunded: dict[str, int], key: Any
) -> dict[str, dict[str, int]]:
    """The sales figures per bucket, added up here from what the test placed and what payment refunded."""
    expected: dict[str, dict[str, int]] = {}
    for order in orders:
        f = expected.setdefault(
            key(order),
            dict.fromkeys(
                (
                    "orders",
                    "units",
                    "gross_minor",
                    "refunded_minor",
                    "net_minor",
                    "cancelled_orders",
                    "cancelled_minor",
                    "rejected_orders",
                    "rejected_minor",
                ),
                0,
            ),
        )
        status = statuses[order.order_id]
        if status in ("cancelled", "rejected"):
            f[f"{status}_orders"] += 1
            f[f"{status}_minor"] += order.gross
            continue
        f["orders"] += 1
        f["units"] += order.units
        f["gross_minor"] += order.gross
        f["refunded_minor"] += refunded.get(order.order_id, 0)
        f["net_minor"] = f["gross_minor"] - f["refunded_minor"]
    return expected


async def _check_sales(
    system: System,
    orders: list[Placed],
    statuses: dict[str, str],
    period: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = {o.order_id for o in orders}
    payments = [json.loads(r.value) for r in await system.records(topics.PAYMENTS_EVENTS)]
    refunded: dict[str, int] = {}
    for event in payments:
        if event["type"] == "PaymentRefunded" and event["correlation_id"] in ids:
            refunded[event["correlation_id"]] = (
                refunded.get(event["correlation_id"], 0) + event["payload"]["amount_minor"]
            )
    # Partial refunds paid: one unit not shipped (500) and one unit returned (700).
    assert {o: a for o, a in refunded.items() if statuses[o] == "shipped"} == {
        orders[1].order_id: 500,
        orders[2].order_id: 700,
    }
    placed_days = {
        e["correlation_id"]: when(e).date().isoformat()
        for e in (json.loads(r.value) for r in await system.records(topics.ORDERS_EVENTS))
        if e["type"] == "OrderPlaced" and e["correlation_id"] in ids
    }

    async with system.http() as ops:
        query = {**period, "currency": CURRENCY}
        by_channel = await get_json(ops, "/reports/sales?" + _query({**query, "group_by": "channel"}))
        by_day = await get_json(ops, "/reports/sales?" + _query({**query, "group_by": "day"}))
        csv_response = await ops.get("/reports/sales", params={**query, "group_by": "channel", "format": "csv"})
    expected = _sales_expected(orders, statuses, refunded, lambda o: o.channel)
    assert {b["bucket"]: _figures(b) for b in by_channel["buckets"]} == expected
    assert {b["currency"] for b in by_channel["buckets"]} == {CURRENCY}
    [total] = by_channel["totals"]
    assert _figures(total) == _sales_expected(orders, statuses, refunded, lambda _: "all")["all"]
    assert {b["bucket"]: _figures(b) for b in by_day["buckets"]} == _sales_expected(
        orders, statuses, refunded, lambda o: placed_days[o.order_id]
    )
    # Top skus: units of orders neither cancelled nor rejected.
    sold: dict[str, int] = {}
    for order in orders:
        if statuses[order.order_id] == "shipped":
            for sku, quantity, _ in order.lines:
                sold[sku] = sold.get(sku, 0) + quantity
    assert [(s["sku"], s["units"]) for s in by_channel["top_skus"]] == sorted(sold.items(), key=lambda kv: -kv[1])

    assert csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.text)))
    assert {r["bucket"]: {k: int(v) for k, v in r.items() if k not in ("bucket", "currency")} for r in rows} == expected

    # A channel key sees its own channel only.
    async with system.http(CHANNEL_KEYS["marketplace"]) as marketplace:
        own = await get_json(marketplace, "/reports/sales?" + _query({**query, "group_by": "channel"}))
        assert {b["bucket"]: _figures(b) for b in own["buckets"]} == {"marketplace": expected["marketplace"]}
        assert [s["sku"] for s in own["top_skus"]] == [orders[1].lines[0][0]]
        other = await marketplace.get("/reports/sales", params={**query, "channel": "web"})
        assert other.status_code == 403
        bad = await marketplace.get("/reports/sales", params={**query, "group_by": "hour"})
        assert (bad.status_code, [f["field"] for f in bad.json()["fields"]]) == (422, ["group_by"])

    # The CLI shows the same figures.
    output = await _cli(
        monkeypatch,
        [
            "report",
            "sales",
            "--api-url",
            system.http_url,
            "--api-key",
            OPS_KEY,
            "--group-by",
            "channel",
            "--from",
            period["from"],
            "--to",
            period["to"],
            "--currency",
            CURRENCY,
        ],
    )
    marketplace_line = next(line for line in output.splitlines() if line.lstrip("│ ").startswith("marketplace"))
    f = expected["marketplace"]
    for cell in (f"{f['gross_minor']:,}", f"{f['refunded_minor']:,}", f"{f['net_minor']:,}"):
        assert cell in marketplace_line, (cell, marketplace_line)


def _figures(bucket: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in bucket.items() if k not in ("bucket", "currency")}


def _query(params: dict[str, str]) -> str:
    return urlencode(params)


async def _cli(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> str:
    monkeypatch.setattr(cli_reports, "console", Console(width=300))
    monkeypatch.setattr(cli_reports, "err", Console(width=300, stderr=True))
    # The CLI runs its own event loop: in a thread of its own, beside the test's.
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, args)
    assert result.exit_code == 0, result.output
    output: str = result.output
    return output


# ------------------------------------------------------------------------------------------ fulfilment


async def _check_fulfilment(
    system: System, orders: list[Placed], period: dict[str, str], late: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped_whole, short_picked, returned, _, _, cancelled, nothing_found = orders
    ids = {o.order_id for o in orders}
    placed_at = {
        e["correlation_id"]: when(e)
        for e in (json.loads(r.value) for r in await system.records(topics.ORDERS_EVENTS))
        if e["type"] == "OrderPlaced" and e["correlation_id"] in ids
    }
    fulfilment = [
        e
        for e in (json.loads(r.value) for r in await system.records(topics.FULFILMENT_EVENTS))
        if e["correlation_id"] in ids
    ]
    shipped_at = {e["correlation_id"]: when(e) for e in fulfilment if e["type"] == "Shipped"}
    delivered_at = {
        e["correlation_id"]: datetime.fromisoformat(e["payload"]["reported_at"])
        for e in fulfilment
        if e["type"] == "ShipmentDelivered" and not e["payload"]["superseded"]
    }
    assert set(shipped_at) == set(delivered_at) == {shipped_whole.order_id, short_picked.order_id, returned.order_id}
    assert delivered_at[short_picked.order_id] == late

    def times(order_ids: list[str]) -> dict[str, Any]:
        to_ship = [(shipped_at[o] - placed_at[o]).total_seconds() for o in order_ids]
        to_door = [(delivered_at[o] - shipped_at[o]).total_seconds() for o in order_ids]
        return {
            "placed_to_shipped_p50_s": percentile(to_ship, 50),
            "placed_to_shipped_p90_s": percentile(to_ship, 90),
            "placed_to_shipped_count": len(to_ship),
            "shipped_to_delivered_p50_s": percentile(to_door, 50),
            "shipped_to_delivered_p90_s": percentile(to_door, 90),
            "shipped_to_delivered_count": len(to_door),
        }

    manual_ids = [shipped_whole.order_id, short_picked.order_id]
    expected = {
        # Four shipments from the manual warehouse: shipped whole (on time), short by one unit (late), cancelled
        # before picking, nothing found.
        REPORT_WAREHOUSE: {
            "shipments": 4,
            "shipped": 2,
            "delivered": 2,
            "cancelled": 1,
            "on_time_rate": 0.5,
            "late_shipments": 1,
            "overdue_shipments": 0,
            "short_picks": 1,
            "short_units": 1,
            "failed_shipments": 1,
            "shipped_units": shipped_whole.units + short_picked.units - 1,
            "returned_units": 0,
            "returns_rate": 0.0,
            **times(manual_ids),
        },
        # One from the automatic warehouse, delivered on time; its one unit came back.
        AUTOMATIC: {
            "shipments": 1,
            "shipped": 1,
            "delivered": 1,
            "cancelled": 0,
            "on_time_rate": 1.0,
            "late_shipments": 0,
            "overdue_shipments": 0,
            "short_picks": 0,
            "short_units": 0,
            "failed_shipments": 0,
            "shipped_units": 1,
            "returned_units": 1,
            "returns_rate": 1.0,
            **times([returned.order_id]),
        },
    }
    assert {cancelled.order_id, nothing_found.order_id} <= ids

    async with system.http(service="fulfilment-service") as ops:
        # Placing times arrive through a consumer of their own: wait until every one is in.
        async def report(warehouse: str) -> dict[str, Any]:
            params = _query({**period, "group_by": "warehouse", "warehouse": warehouse})
            return await get_json(ops, f"/reports/fulfilment?{params}")

        for warehouse, figures in expected.items():

            async def probe(warehouse: str = warehouse) -> dict[str, Any]:
                return await report(warehouse)

            def complete(body: dict[str, Any], figures: dict[str, Any] = figures) -> bool:
                return (
                    bool(body["buckets"])
                    and body["total"]["placed_to_shipped_count"] == figures["placed_to_shipped_count"]
                )

            body = await eventually(probe, complete)
            [bucket] = body["buckets"]
            assert bucket["bucket"] == warehouse
            got = {k: bucket[k] for k in figures}
            for name in [k for k in figures if k.endswith("_s")]:
                assert got.pop(name) == pytest.approx(figures[name], abs=0.01), name
            assert got == {k: v for k, v in figures.items() if not k.endswith("_s")}, warehouse
        csv_response = await ops.get(
            "/reports/fulfilment",
            params={**period, "group_by": "warehouse", "warehouse": REPORT_WAREHOUSE},
            headers={"Accept": "text/csv"},
        )
    [row] = list(csv.DictReader(io.StringIO(csv_response.text)))
    assert (row["bucket"], row["shipments"], row["on_time_rate"], row["late_shipments"]) == (
        REPORT_WAREHOUSE,
        "4",
        "0.5",
        "1",
    )

    # A key limited to the manual warehouse sees that warehouse only.
    async with system.http(REPORT_WAREHOUSE_KEY, service="fulfilment-service") as site:
        own = await get_json(site, "/reports/fulfilment?" + _query({**period, "group_by": "warehouse"}))
        assert [b["bucket"] for b in own["buckets"]] == [REPORT_WAREHOUSE]
        assert own["total"]["shipments"] == 4
        other = await site.get("/reports/fulfilment", params={**period, "warehouse": AUTOMATIC})
        assert other.status_code == 403
    async with system.http(CHANNEL_KEYS["web"], service="fulfilment-service") as channel:
        assert (await channel.get("/reports/fulfilment", params=period)).status_code == 403

    output = await _cli(
        monkeypatch,
        [
            "report",
            "fulfilment",
            "--api-url",
            system.http_urls["fulfilment-service"],
            "--api-key",
            OPS_KEY,
            "--group-by",
            "warehouse",
            "--warehouse",
            REPORT_WAREHOUSE,
            "--from",
            period["from"],
            "--to",
            period["to"],
        ],
    )
    line = next(line for line in output.splitlines() if line.lstrip("│ ").startswith(REPORT_WAREHOUSE))
    for cell in ("50.0%", "1 (1 units)", "0.0%"):
        assert cell in line, (cell, line)
