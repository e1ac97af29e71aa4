"""Warehouse staff's steps through fulfilment-service's API (manual warehouses), shared by the tests of
fulfilment, returns and payments."""

from typing import Any

import httpx

from harness import WAREHOUSE_KEY, System, eventually

PARCEL = {"weight_grams": 1800, "length_mm": 350, "width_mm": 250, "height_mm": 120}


async def manual_stock(system: System, sku: str, levels: dict[str, int]) -> None:
    for warehouse in levels:
        await system.add_warehouse(warehouse)
    await system.set_stock(sku, levels)


async def shipments_by_warehouse(warehouse: httpx.AsyncClient, order_id: str, count: int) -> dict[str, dict[str, Any]]:
    """The order's shipments in fulfilment, by warehouse, once all `count` exist."""
    body = await eventually(
        lambda: get_json(warehouse, f"/orders/{order_id}/shipments"), lambda b: len(b["shipments"]) == count
    )
    return {s["warehouse_id"]: s for s in body["shipments"]}


async def get_json(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def post_json(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post(path, json=body or {})
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    result: dict[str, Any] = response.json()
    return result


async def pick_pack_ship(warehouse: httpx.AsyncClient, shipment: dict[str, Any], missing: int = 0) -> dict[str, Any]:
    """Picks every unit (but `missing` of the first line: a short pick), packs and ships."""
    sid = shipment["shipment_id"]
    await post_json(warehouse, f"/shipments/{sid}/picking")
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in shipment["lines"]]
    lines[0]["quantity"] -= missing
    await post_json(warehouse, f"/shipments/{sid}/picks", {"lines": lines})
    await post_json(warehouse, f"/shipments/{sid}/pack", {"parcels": [PARCEL]})
    return await post_json(warehouse, f"/shipments/{sid}/ship")


async def receive_and_inspect(system: System, return_id: str, sellable: list[dict[str, Any]]) -> None:
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse:
        await eventually(
            lambda: warehouse.get(f"/returns/{return_id}"),
            lambda r: r.status_code == 200 and r.json()["status"] == "authorised",
        )
        await post_json(warehouse, f"/returns/{return_id}/receive")
        await post_json(warehouse, f"/returns/{return_id}/inspect", {"lines": sellable})


async def return_of(system: System, order_id: str, return_id: str, until: Any) -> dict[str, Any]:
    async with system.http() as http:
        order = await eventually(
            lambda: system.order(order_id, http),
            lambda o: any(r["return_id"] == return_id and until(r) for r in o["returns"]),
        )
    found: list[dict[str, Any]] = [r for r in order["returns"] if r["return_id"] == return_id]
    return found[0]
