"""Demand planning end to end: orders placed through order-service become inventory-service's sales
history, and its forecast, reorder suggestion and days-of-cover report see them."""

import math
from datetime import datetime
from statistics import NormalDist
from typing import Any

from harness import System, eventually, unique_sku

PRICE = 1_250


async def test_orders_placed_become_the_demand_inventory_forecasts(system: System) -> None:
    sku = unique_sku("SKU-DEMAND")
    await system.set_stock(sku, {"WH-BER": 10})

    # 2 + 3 units are served; the order for 20 is rejected for want of stock, and is demand all the same.
    order_ids = []
    for quantity in (2, 3, 20):
        response = await system.place_order([(sku, quantity, PRICE)])
        assert response.status_code == 201, response.text
        order_ids.append(response.json()["order_id"])
    orders = [await system.wait_for_status(order_id, {"shipped", "rejected"}) for order_id in order_ids]
    assert [o["status"] for o in orders] == ["shipped", "shipped", "rejected"]
    # History up to the day the orders were placed (UTC), today: the default would stop at yesterday.
    day = datetime.fromisoformat(orders[0]["timeline"][0]["at"]).date().isoformat()

    async with system.http(service="inventory-service") as inventory:

        async def forecast() -> dict[str, Any]:
            response = await inventory.get(f"/skus/{sku}/forecast", params={"through": day, "horizon_days": 7})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        body = await eventually(forecast, lambda f: f["mean_daily_demand"] == 25.0)
        assert body["method"] == "recent_mean"
        assert body["history_days"] == 1
        assert [d["units"] for d in body["daily"]] == [25.0] * 7

        suggestion = await inventory.get(
            f"/skus/{sku}/reorder-suggestion", params={"through": day, "lead_time_days": 3, "service_level": 0.9}
        )
        assert suggestion.status_code == 200, suggestion.text
        # One day of history: the Poisson spread sqrt(25) = 5 per day.
        expected = math.ceil(3 * 25 + NormalDist().inv_cdf(0.9) * 5 * math.sqrt(3))
        assert suggestion.json()["reorder_point"] == expected

        await system.wait_for_stock(sku, {"WH-BER": (5, 0)})
        report = await inventory.get("/reports/days-of-cover", params={"through": day, "limit": 1000})
        assert report.status_code == 200, report.text
        [row] = [r for r in report.json()["skus"] if r["sku"] == sku]
        assert (row["available"], row["mean_daily_demand"], row["days_of_cover"]) == (5, 25.0, 0.2)

        bad = await inventory.get(f"/skus/{sku}/reorder-suggestion", params={"lead_time_days": "a week"})
        assert bad.status_code == 422
        assert [f["field"] for f in bad.json()["fields"]] == ["lead_time_days"]
