"""The HTTP API: the warehouse's manual steps and the carriers' webhook, on a real PostgreSQL (no Kafka: the
outbox is read directly)."""

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest_asyncio

from fulfilment_service.adapters.shipment_repository import ShipmentRepository
from fulfilment_service.domain.dispatch import DispatchCalendar, WarehouseCalendars
from fulfilment_service.domain.shipment import shipment_id_for
from fulfilment_service.entrypoints.http import create_app
from fulfilment_service.handlers import FulfilmentConfig, FulfilmentHandlers, FulfilmentOperations, WarehouseMode
from oms_events import Message, default_registry
from oms_events.messages import (
    AuthoriseReturn,
    FulfilmentFailed,
    ReturnAuthorised,
    ReturnInspected,
    ReturnReceived,
    ShipmentDelivered,
    ShipmentInTransit,
    ShipmentPacked,
    ShipmentPicked,
    ShipmentPickingStarted,
    ShipOrder,
    Shipped,
)
from oms_events.values import Address, Allocation, DeliveryMethod
from oms_runtime.db import Database
from oms_runtime.http_api import ApiKeyAuthenticator
from oms_runtime.testing import HandlerHarness

REGISTRY = default_registry()
WAREHOUSE_KEY = "test-warehouse-key-0123456789"
CARRIER_KEY = "test-carrier-key-0123456789"
CHANNEL_KEY = "test-channel-key-0123456789"
BERLIN_KEY = "test-berlin-key-0123456789"
DHL_SECRET = "dhl-webhook-secret-0123456789"
KEYS = json.dumps(
    [
        {"name": "wh", "key": WAREHOUSE_KEY, "role": "warehouse"},
        {"name": "berlin", "key": BERLIN_KEY, "role": "warehouse", "warehouse_id": "WH-BER"},
        {"name": "dhl", "key": CARRIER_KEY, "role": "carrier"},
        {"name": "web", "key": CHANNEL_KEY, "role": "channel", "channel": "web"},
    ]
)
TUESDAY_MORNING = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
ADDRESS = Address(name="Jane Doe", line1="1 Example Street", city="Berlin", postal_code="10115", country="DE")
PARCEL = {"weight_grams": 2300, "length_mm": 400, "width_mm": 300, "height_mm": 150}


class System:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.handlers = FulfilmentHandlers(
            ShipmentRepository(),
            WarehouseCalendars(default=DispatchCalendar(ZoneInfo("Europe/Berlin"))),
            FulfilmentConfig(default_mode=WarehouseMode.MANUAL),
            clock=lambda: TUESDAY_MORNING,
        )
        self.commands = HandlerHarness(db, "fulfilment-service", self.handlers.handler_map(), REGISTRY)
        operations = FulfilmentOperations(db, REGISTRY, self.handlers)
        self.app = create_app(
            operations,
            ApiKeyAuthenticator.from_json(KEYS),
            modes=lambda _: WarehouseMode.MANUAL,
            carrier_secrets={"DHL": DHL_SECRET},
        )

    def client(self, key: str | None = WAREHOUSE_KEY) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://fulfilment",
            headers={"X-API-Key": key} if key else {},
        )

    async def new_order(self, lines: list[tuple[str, str, int]]) -> UUID:
        order_id = uuid4()
        allocations = [Allocation(sku=sku, warehouse_id=wh, quantity=q) for sku, wh, q in lines]
        command = ShipOrder(
            order_id=order_id,
            allocations=allocations,
            shipping_address=ADDRESS,
            delivery_method=DeliveryMethod.STANDARD,
        )
        await self.commands.send(command)
        return order_id

    async def emitted(self, order_id: UUID) -> list[Message]:
        return await self.commands.emitted(order_id)

    async def ship(self, order_id: UUID, warehouse: str) -> dict[str, Any]:
        shipment_id = shipment_id_for(order_id, warehouse)
        async with self.client() as http:
            assert (await http.post(f"/shipments/{shipment_id}/picking")).status_code == 200
            response = await http.post(
                f"/shipments/{shipment_id}/picks", json={"lines": [{"sku": "SKU-A", "quantity": 2}]}
            )
            assert response.status_code == 200, response.text
            assert (await http.post(f"/shipments/{shipment_id}/pack", json={"parcels": [PARCEL]})).status_code == 200
            shipped = await http.post(f"/shipments/{shipment_id}/ship")
        assert shipped.status_code == 200, shipped.text
        body: dict[str, Any] = shipped.json()
        return body


@pytest_asyncio.fixture(scope="module")
async def system(db: Database) -> AsyncIterator[System]:
    yield System(db)


def wh() -> str:
    return f"WH-{uuid4().hex[:8]}"


async def test_a_warehouse_picks_packs_and_ships_through_the_api(system: System) -> None:
    warehouse = wh()
    order_id = await system.new_order([("SKU-A", warehouse, 2), ("SKU-B", warehouse, 1)])
    shipment_id = shipment_id_for(order_id, warehouse)
    async with system.client() as http:
        listed = (await http.get(f"/warehouses/{warehouse}/pick-lists")).json()
        assert listed["mode"] == "manual"
        assert [(p["shipment_id"], p["status"]) for p in listed["pick_lists"]] == [(str(shipment_id), "created")]
        assert [(line["sku"], line["quantity"]) for line in listed["pick_lists"][0]["lines"]] == [
            ("SKU-A", 2),
            ("SKU-B", 1),
        ]
        picking = await http.post(f"/shipments/{shipment_id}/picking")
        assert picking.json()["status"] == "picking"
        # Only one of SKU-A's two units is on the shelf, SKU-B is missing: a partial shipment.
        picked = await http.post(f"/shipments/{shipment_id}/picks", json={"lines": [{"sku": "SKU-A", "quantity": 1}]})
        assert picked.status_code == 200, picked.text
        assert picked.json()["status"] == "picked"
        assert [(line["sku"], line["quantity"]) for line in picked.json()["short"]] == [("SKU-A", 1), ("SKU-B", 1)]
        packed = await http.post(f"/shipments/{shipment_id}/pack", json={"parcels": [PARCEL]})
        assert packed.json()["parcels"] == [PARCEL]
        shipped = await http.post(f"/shipments/{shipment_id}/ship")
        assert shipped.status_code == 200
        body = shipped.json()
        assert body["status"] == "shipped"
        assert body["carrier"] == "DHL"
        assert len(body["tracking_number"]) == 10
        # Tuesday 09:00 in Berlin, before the cut-off: standard (3 business days) arrives Friday.
        assert body["estimated_delivery"] == "2026-03-06"
        assert (await http.get(f"/warehouses/{warehouse}/pick-lists")).json()["pick_lists"] == []
        assert (await http.get(f"/shipments/{shipment_id}")).json()["status"] == "shipped"
        assert [s["shipment_id"] for s in (await http.get(f"/orders/{order_id}/shipments")).json()["shipments"]] == [
            str(shipment_id)
        ]
    kinds = [type(m) for m in await system.emitted(order_id)][1:]
    assert kinds == [ShipmentPickingStarted, ShipmentPicked, ShipmentPacked, Shipped]
    shipped_event = (await system.emitted(order_id))[-1]
    assert isinstance(shipped_event, Shipped)
    assert shipped_event.lines == [Allocation(sku="SKU-A", warehouse_id=warehouse, quantity=1)]


async def test_nothing_found_fails_the_shipment_for_the_saga(system: System) -> None:
    warehouse = wh()
    order_id = await system.new_order([("SKU-A", warehouse, 2)])
    shipment_id = shipment_id_for(order_id, warehouse)
    async with system.client() as http:
        await http.post(f"/shipments/{shipment_id}/picking")
        failed = await http.post(f"/shipments/{shipment_id}/picks", json={"lines": []})
        assert failed.json()["status"] == "failed"
        refused = await http.post(f"/shipments/{shipment_id}/pack", json={"parcels": [PARCEL]})
    assert refused.status_code == 409
    assert refused.json()["error"] == "transition_not_allowed"
    last = (await system.emitted(order_id))[-1]
    assert isinstance(last, FulfilmentFailed)
    assert last.reason_code == "short_pick"


async def test_warehouse_errors_are_structured(system: System) -> None:
    warehouse = wh()
    order_id = await system.new_order([("SKU-A", warehouse, 2)])
    shipment_id = shipment_id_for(order_id, warehouse)
    async with system.client() as http:
        early = await http.post(f"/shipments/{shipment_id}/ship")
        assert early.status_code == 409
        assert "created" in early.json()["message"]
        missing = await http.post(f"/shipments/{uuid4()}/picking")
        assert (missing.status_code, missing.json()["error"]) == (404, "shipment_not_found")
        await http.post(f"/shipments/{shipment_id}/picking")
        unknown = await http.post(f"/shipments/{shipment_id}/picks", json={"lines": [{"sku": "SKU-Z", "quantity": 1}]})
        assert unknown.status_code == 422
        assert unknown.json()["fields"][0]["field"] == "lines.0"
        too_many = await http.post(
            f"/shipments/{shipment_id}/picks",
            json={"lines": [{"sku": "SKU-A", "quantity": 1}, {"sku": "SKU-A", "quantity": 1}]},
        )
        assert too_many.json()["fields"][0]["field"] == "lines.1.sku"
        negative = await http.post(
            f"/shipments/{shipment_id}/picks", json={"lines": [{"sku": "SKU-A", "quantity": -1}]}
        )
        assert negative.json()["fields"][0]["field"] == "lines.0.quantity"
        await http.post(f"/shipments/{shipment_id}/picks", json={"lines": [{"sku": "SKU-A", "quantity": 2}]})
        bad_parcel = await http.post(
            f"/shipments/{shipment_id}/pack", json={"parcels": [{**PARCEL, "weight_grams": 0}]}
        )
        assert bad_parcel.status_code == 422
        assert bad_parcel.json()["fields"][0]["field"] == "parcels.0.weight_grams"


async def test_only_warehouse_and_ops_keys_use_the_warehouse_routes(system: System) -> None:
    for key, expected in ((None, 401), ("not-a-key-0123456789", 401), (CHANNEL_KEY, 403), (CARRIER_KEY, 403)):
        async with system.client(key) as http:
            assert (await http.get("/warehouses/WH-1/pick-lists")).status_code == expected


def update(tracking_number: str, status: str, at: str, event_id: str | None = None, **extra: str) -> dict[str, Any]:
    body: dict[str, Any] = {"tracking_number": tracking_number, "status": status, "occurred_at": at, **extra}
    if event_id:
        body["event_id"] = event_id
    return body


async def test_carrier_updates_move_the_shipment_to_delivered(system: System) -> None:
    warehouse = wh()
    order_id = await system.new_order([("SKU-A", warehouse, 2)])
    tracking = (await system.ship(order_id, warehouse))["tracking_number"]
    async with system.client(CARRIER_KEY) as http:
        for status, at in (
            ("in_transit", "2026-03-03T18:00:00+01:00"),
            ("out_for_delivery", "2026-03-05T07:30:00+01:00"),
            ("delivered", "2026-03-05T11:02:00+01:00"),
        ):
            response = await http.post("/carriers/dhl/updates", json=update(tracking, status, at, location="Berlin"))
            assert response.status_code == 200, response.text
            assert response.json()["status"] == status
    delivered = (await system.emitted(order_id))[-1]
    assert isinstance(delivered, ShipmentDelivered)
    assert (delivered.location, delivered.tracking_number, delivered.carrier) == ("Berlin", tracking, "DHL")


async def test_the_same_update_twice_has_one_effect(system: System) -> None:
    warehouse = wh()
    order_id = await system.new_order([("SKU-A", warehouse, 2)])
    tracking = (await system.ship(order_id, warehouse))["tracking_number"]
    async with system.client(CARRIER_KEY) as http:
        for body in (
            update(tracking, "in_transit", "2026-03-03T18:00:00Z", event_id="evt-1"),
            update(tracking, "in_transit", "2026-03-03T18:00:00Z"),
        ):
            first = await http.post("/carriers/DHL/updates", json=body)
            again = await http.post("/carriers/DHL/updates", json=body)
            assert first.json()["duplicate"] is False
            assert again.json()["duplicate"] is True
    assert len([m for m in await system.emitted(order_id) if isinstance(m, ShipmentInTransit)]) == 2


async def test_a_late_update_is_recorded_without_moving_the_shipment_back(system: System) -> None:
    warehouse = wh()
    order_id = await system.new_order([("SKU-A", warehouse, 2)])
    tracking = (await system.ship(order_id, warehouse))["tracking_number"]
    async with system.client(CARRIER_KEY) as http:
        await http.post("/carriers/DHL/updates", json=update(tracking, "delivered", "2026-03-05T11:00:00Z"))
        late = await http.post("/carriers/DHL/updates", json=update(tracking, "in_transit", "2026-03-03T18:00:00Z"))
    assert late.json() == {
        "shipment_id": str(shipment_id_for(order_id, warehouse)),
        "status": "delivered",
        "duplicate": False,
        "superseded": True,
    }
    recorded = (await system.emitted(order_id))[-1]
    assert isinstance(recorded, ShipmentInTransit)
    assert recorded.superseded


async def test_a_signed_update_needs_no_key(system: System) -> None:
    warehouse = wh()
    order_id = await system.new_order([("SKU-A", warehouse, 2)])
    tracking = (await system.ship(order_id, warehouse))["tracking_number"]
    raw = json.dumps(update(tracking, "in_transit", "2026-03-03T18:00:00Z", event_id="signed-1")).encode()
    good = "sha256=" + hmac.new(DHL_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    wrong = "sha256=" + hmac.new(b"another-secret-0123456789", raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    async with system.client(None) as http:
        assert (await http.post("/carriers/DHL/updates", content=raw, headers=headers)).status_code == 401
        bad = await http.post("/carriers/DHL/updates", content=raw, headers={**headers, "X-Carrier-Signature": wrong})
        assert (bad.status_code, bad.json()["error"]) == (401, "unauthenticated")
        # A signature is only good for the carrier whose secret made it (UPS has none configured).
        other = await http.post("/carriers/UPS/updates", content=raw, headers={**headers, "X-Carrier-Signature": good})
        assert other.status_code == 401
        ok = await http.post("/carriers/DHL/updates", content=raw, headers={**headers, "X-Carrier-Signature": good})
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "in_transit"
    async with system.client(WAREHOUSE_KEY) as http:
        assert (await http.post("/carriers/DHL/updates", content=raw, headers=headers)).status_code == 403


async def test_carrier_update_errors(system: System) -> None:
    async with system.client(CARRIER_KEY) as http:
        unknown = await http.post(
            "/carriers/DHL/updates", json=update("0000000000", "in_transit", "2026-03-03T18:00:00Z")
        )
        assert (unknown.status_code, unknown.json()["error"]) == (404, "shipment_not_found")
        carrier = await http.post("/carriers/FEDEX/updates", json=update("1", "in_transit", "2026-03-03T18:00:00Z"))
        assert (carrier.status_code, carrier.json()["error"]) == (404, "carrier_not_found")
        bad = await http.post(
            "/carriers/DHL/updates", json={"tracking_number": "1", "status": "lost", "occurred_at": "x"}
        )
        assert bad.status_code == 422
        assert {f["field"] for f in bad.json()["fields"]} == {"status", "occurred_at"}
        naive = await http.post("/carriers/DHL/updates", json=update("1", "in_transit", "2026-03-03T18:00:00"))
        assert [f["field"] for f in naive.json()["fields"]] == ["occurred_at"]


async def test_a_return_is_authorised_received_and_inspected(system: System) -> None:
    order_id, return_id = uuid4(), uuid4()
    lines = [
        Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2),
        Allocation(sku="SKU-B", warehouse_id="WH-2", quantity=1),
    ]
    command = AuthoriseReturn(order_id=order_id, return_id=return_id, lines=lines, reason="too small")
    await system.commands.send(command)
    await system.commands.send(command.model_copy())  # re-sent by the saga: answered again, authorised once
    async with system.client() as http:
        expected = (await http.get("/returns")).json()["returns"]
        assert str(return_id) in {r["return_id"] for r in expected}
        early = await http.post(f"/returns/{return_id}/inspect", json={"lines": []})
        assert (early.status_code, early.json()["error"]) == (409, "transition_not_allowed")
        received = await http.post(f"/returns/{return_id}/receive")
        assert received.json()["status"] == "received"
        wrong = await http.post(
            f"/returns/{return_id}/inspect", json={"lines": [{"sku": "SKU-A", "warehouse_id": "WH-1", "sellable": 3}]}
        )
        assert (wrong.status_code, wrong.json()["fields"][0]["field"]) == (422, "lines.0")
        inspected = await http.post(
            f"/returns/{return_id}/inspect", json={"lines": [{"sku": "SKU-A", "warehouse_id": "WH-1", "sellable": 1}]}
        )
        assert inspected.status_code == 200, inspected.text
        body = inspected.json()
        assert body["status"] == "inspected"
        assert [(x["sku"], x["quantity"]) for x in body["sellable"]] == [("SKU-A", 1)]
        assert [(x["sku"], x["quantity"]) for x in body["unsellable"]] == [("SKU-A", 1), ("SKU-B", 1)]
        assert (await http.get(f"/returns/{uuid4()}")).status_code == 404
    emitted = await system.emitted(order_id)
    assert [type(m) for m in emitted] == [ReturnAuthorised, ReturnAuthorised, ReturnReceived, ReturnInspected]
    assert await system.commands.stream_length(f"return-{return_id}") == 3


async def test_a_key_limited_to_one_warehouse_works_that_warehouse_only(system: System) -> None:
    other = wh()
    order_id = await system.new_order([("SKU-A", "WH-BER", 2), ("SKU-A", other, 2)])
    mine, theirs = shipment_id_for(order_id, "WH-BER"), shipment_id_for(order_id, other)
    async with system.client(BERLIN_KEY) as http:
        assert (await http.get("/warehouses/WH-BER/pick-lists")).status_code == 200
        refused = await http.get(f"/warehouses/{other}/pick-lists")
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        assert refused.json()["message"] == f"This key acts for warehouse WH-BER only; warehouse {other}."
        listed = (await http.get(f"/orders/{order_id}/shipments")).json()["shipments"]
        assert [s["warehouse_id"] for s in listed] == ["WH-BER"]
        looked = await http.get(f"/shipments/{theirs}")
        assert looked.status_code == 403
        assert f"shipment {theirs} belongs to warehouse {other}" in looked.json()["message"]
        for path, body in (
            ("picking", None),
            ("picks", {"lines": [{"sku": "SKU-A", "quantity": 2}]}),
            ("pack", {"parcels": [PARCEL]}),
            ("ship", None),
        ):
            response = await http.post(f"/shipments/{theirs}/{path}", json=body)
            assert (response.status_code, response.json()["error"]) == (403, "forbidden"), path
        assert (await http.post(f"/shipments/{mine}/picking")).json()["status"] == "picking"
        assert (await http.post(f"/shipments/{uuid4()}/picking")).status_code == 404
    # A warehouse key without a warehouse still works every warehouse.
    async with system.client() as http:
        assert (await http.get(f"/shipments/{theirs}")).json()["status"] == "created", "nothing happened to it"
        assert len((await http.get(f"/orders/{order_id}/shipments")).json()["shipments"]) == 2
        assert (await http.post(f"/shipments/{theirs}/picking")).status_code == 200
    emitted = await system.emitted(order_id)
    assert [(type(m), m.warehouse_id) for m in emitted if isinstance(m, ShipmentPickingStarted)] == [
        (ShipmentPickingStarted, "WH-BER"),
        (ShipmentPickingStarted, other),
    ]


async def test_a_key_limited_to_one_warehouse_works_the_returns_coming_back_to_it(system: System) -> None:
    other = wh()
    elsewhere, shared = uuid4(), uuid4()
    for return_id, lines in (
        (elsewhere, [Allocation(sku="SKU-A", warehouse_id=other, quantity=1)]),
        (
            shared,
            [
                Allocation(sku="SKU-A", warehouse_id="WH-BER", quantity=1),
                Allocation(sku="SKU-B", warehouse_id=other, quantity=1),
            ],
        ),
    ):
        await system.commands.send(AuthoriseReturn(order_id=uuid4(), return_id=return_id, lines=lines, reason="x"))
    async with system.client(BERLIN_KEY) as http:
        listed = {r["return_id"] for r in (await http.get("/returns")).json()["returns"]}
        assert str(shared) in listed
        assert str(elsewhere) not in listed
        assert (await http.get(f"/returns/{elsewhere}")).status_code == 403
        assert (await http.post(f"/returns/{elsewhere}/receive")).status_code == 403
        assert (await http.post(f"/returns/{shared}/receive")).json()["status"] == "received"
        foreign = await http.post(
            f"/returns/{shared}/inspect", json={"lines": [{"sku": "SKU-B", "warehouse_id": other, "sellable": 1}]}
        )
        assert foreign.status_code == 403
        assert f"lines.0 (SKU-B) belongs to warehouse {other}" in foreign.json()["message"]
        inspected = await http.post(
            f"/returns/{shared}/inspect", json={"lines": [{"sku": "SKU-A", "warehouse_id": "WH-BER", "sellable": 1}]}
        )
        assert inspected.json()["status"] == "inspected"
    async with system.client() as http:
        assert (await http.get(f"/returns/{elsewhere}")).json()["status"] == "authorised"
