"""ShipOrder and CancelShipment end to end through the runtime's message processor, on a real PostgreSQL.

Each test run uses a throwaway schema; Kafka is not involved (the outbox is read directly).
"""

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlalchemy import select
from structlog.testing import LogCapture

import fulfilment_service.handlers
from fulfilment_service.adapters.shipment_repository import ShipmentRepository
from fulfilment_service.adapters.tables import return_views, shipment_views
from fulfilment_service.domain.dispatch import DispatchCalendar, WarehouseCalendars
from fulfilment_service.domain.shipment import shipment_id_for
from fulfilment_service.handlers import FulfilmentConfig, FulfilmentHandlers, WarehouseMode, random_entropy
from fulfilment_service.rebuild_projection import rebuild
from oms_events import Message, default_registry
from oms_events.messages import (
    AuthoriseReturn,
    CancelShipment,
    FulfilmentCancelled,
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentPacked,
    ShipmentPicked,
    ShipmentPickingStarted,
    ShipOrder,
    Shipped,
)
from oms_events.values import Address, Allocation, DeliveryMethod
from oms_runtime.db import Database
from oms_runtime.messaging import Outcome
from oms_runtime.testing import HandlerHarness

REGISTRY = default_registry()
CALENDARS = WarehouseCalendars(
    default=DispatchCalendar(UTC),
    by_warehouse={
        "WH-BER": DispatchCalendar(ZoneInfo("Europe/Berlin")),
        "WH-LON": DispatchCalendar(ZoneInfo("Europe/London")),
    },
)
# Friday 2026-03-06, 14:30 UTC: 15:30 in Berlin (past the cut-off), 14:30 in London (before it).
FRIDAY_AFTERNOON = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)
ADDRESS = Address(name="Jane Doe", line1="1 Example Street", city="Berlin", postal_code="10115", country="DE")


class Harness(HandlerHarness):
    def __init__(
        self, db: Database, entropy: Callable[[], int] | None = None, manual: frozenset[str] = frozenset()
    ) -> None:
        self.handlers = FulfilmentHandlers(
            ShipmentRepository(),
            CALENDARS,
            FulfilmentConfig(modes=dict.fromkeys(manual, WarehouseMode.MANUAL)),
            clock=lambda: FRIDAY_AFTERNOON,
            entropy=entropy or random_entropy,
        )
        super().__init__(db, "fulfilment-service", self.handlers.handler_map(), REGISTRY)

    async def shipped(self, order_id: UUID) -> list[Shipped]:
        return [m for m in await self.emitted(order_id) if isinstance(m, Shipped)]

    async def of_type(self, order_id: UUID, cls: type[Message]) -> list[Message]:
        return [m for m in await self.emitted(order_id) if isinstance(m, cls)]

    async def shipment_stream_length(self, order_id: UUID, warehouse_id: str) -> int:
        return await self.stream_length(f"shipment-{shipment_id_for(order_id, warehouse_id)}")

    async def projection(self, order_id: UUID) -> list[Any]:
        async with self.db.transaction() as session:
            return await ShipmentRepository().of_order(session, order_id)


@pytest.fixture
def harness(db: Database) -> Harness:
    return Harness(db)


def ship_order(order_id: UUID, method: DeliveryMethod = DeliveryMethod.STANDARD) -> ShipOrder:
    return ShipOrder(
        order_id=order_id,
        allocations=[
            Allocation(sku="SKU-MUG-BLUE", warehouse_id="WH-LON", quantity=2),
            Allocation(sku="SKU-TSHIRT-RED-M", warehouse_id="WH-BER", quantity=1),
            Allocation(sku="SKU-HOODIE-GREY-L", warehouse_id="WH-BER", quantity=1),
        ],
        shipping_address=ADDRESS,
        delivery_method=method,
    )


async def test_automatic_mode_walks_each_warehouse_shipment_to_shipped(harness: Harness) -> None:
    order_id = uuid4()
    assert await harness.send(ship_order(order_id)) is Outcome.PROCESSED
    emitted = await harness.emitted(order_id)
    # Per warehouse, in order: created, picking, picked, packed, shipped; all keyed by the order id.
    assert [type(m) for m in emitted] == 2 * [
        ShipmentCreated,
        ShipmentPickingStarted,
        ShipmentPicked,
        ShipmentPacked,
        Shipped,
    ]
    berlin, london = await harness.shipped(order_id)
    assert (berlin.warehouse_id, london.warehouse_id) == ("WH-BER", "WH-LON")
    assert berlin.shipment_id == shipment_id_for(order_id, "WH-BER")
    assert {berlin.carrier, london.carrier} == {"DHL"}
    assert len(berlin.tracking_number) == 10
    assert berlin.lines == [
        Allocation(sku="SKU-HOODIE-GREY-L", warehouse_id="WH-BER", quantity=1),
        Allocation(sku="SKU-TSHIRT-RED-M", warehouse_id="WH-BER", quantity=1),
    ]
    assert [p.weight_grams for p in berlin.parcels] == [1000]
    assert berlin.tracking_number != london.tracking_number
    assert berlin.shipment_id != london.shipment_id
    # Berlin is past its cut-off on Friday: ships Monday, standard arrives Thursday.
    assert berlin.estimated_delivery == date(2026, 3, 12)
    # London ships on Friday: arrives Wednesday.
    assert london.estimated_delivery == date(2026, 3, 11)
    assert await harness.shipment_stream_length(order_id, "WH-BER") == 5
    rows = await harness.projection(order_id)
    assert [(r["warehouse_id"], r["tracking_number"], r["status"]) for r in rows] == [
        ("WH-BER", berlin.tracking_number, "shipped"),
        ("WH-LON", london.tracking_number, "shipped"),
    ]


@pytest.mark.parametrize(
    ("method", "carrier", "prefix"),
    [(DeliveryMethod.EXPEDITED, "UPS", "1Z"), (DeliveryMethod.NEXT_DAY, "DPD", "")],
)
async def test_the_delivery_method_picks_the_carrier(
    harness: Harness, method: DeliveryMethod, carrier: str, prefix: str
) -> None:
    order_id = uuid4()
    await harness.send(ship_order(order_id, method))
    shipments = await harness.shipped(order_id)
    assert {s.carrier for s in shipments} == {carrier}
    assert all(s.tracking_number.startswith(prefix) for s in shipments)
    assert {s.service_level for s in shipments} == {method.value}


async def test_a_resent_command_re_emits_the_same_shipments(harness: Harness) -> None:
    order_id = uuid4()
    await harness.send(ship_order(order_id))
    # The saga's retry: a new message (new id) for the same order, even with another method.
    assert await harness.send(ship_order(order_id, DeliveryMethod.NEXT_DAY)) is Outcome.PROCESSED
    emitted = await harness.shipped(order_id)
    assert len(emitted) == 4
    assert emitted[2:] == emitted[:2]
    assert len(await harness.of_type(order_id, ShipmentCreated)) == 4
    assert await harness.shipment_stream_length(order_id, "WH-BER") == 5
    assert len(await harness.projection(order_id)) == 2


async def test_a_redelivered_message_has_no_second_effect(harness: Harness) -> None:
    order_id = uuid4()
    command = ship_order(order_id)
    raw = REGISTRY.wrap(command, producer="test").to_bytes()
    assert await harness.send(command, raw) is Outcome.PROCESSED
    assert await harness.send(command, raw) is Outcome.DUPLICATE
    assert len(await harness.shipped(order_id)) == 2


async def test_manual_mode_only_creates_the_pick_list(db: Database) -> None:
    harness = Harness(db, manual=frozenset({"WH-BER"}))
    order_id = uuid4()
    await harness.send(ship_order(order_id))
    assert [(type(m), getattr(m, "warehouse_id", None)) for m in await harness.emitted(order_id)] == [
        (ShipmentCreated, "WH-BER"),
        (ShipmentCreated, "WH-LON"),
        (ShipmentPickingStarted, "WH-LON"),
        (ShipmentPicked, "WH-LON"),
        (ShipmentPacked, "WH-LON"),
        (Shipped, "WH-LON"),
    ]
    rows = {r["warehouse_id"]: r for r in await harness.projection(order_id)}
    assert rows["WH-BER"]["status"] == "created"
    assert rows["WH-BER"]["tracking_number"] is None
    assert rows["WH-BER"]["delivery_method"] == "standard"
    async with db.transaction() as session:
        listed = await ShipmentRepository().pick_lists(session, "WH-BER", ["created"], 500)
    assert shipment_id_for(order_id, "WH-BER") in {r["shipment_id"] for r in listed}


async def test_cancel_shipment_cancels_every_shipment_not_yet_shipped(db: Database) -> None:
    harness = Harness(db, manual=frozenset({"WH-BER", "WH-LON"}))
    order_id = uuid4()
    await harness.send(ship_order(order_id))
    cancel = CancelShipment(order_id=order_id, reason="customer cancelled", requested_by="jane")
    assert await harness.send(cancel) is Outcome.PROCESSED
    cancelled = await harness.of_type(order_id, ShipmentCancelled)
    assert {c.warehouse_id for c in cancelled if isinstance(c, ShipmentCancelled)} == {"WH-BER", "WH-LON"}
    [answer] = await harness.of_type(order_id, FulfilmentCancelled)
    assert isinstance(answer, FulfilmentCancelled)
    assert set(answer.shipment_ids) == {shipment_id_for(order_id, w) for w in ("WH-BER", "WH-LON")}
    assert {r["status"] for r in await harness.projection(order_id)} == {"cancelled"}
    # A re-sent cancel is answered again and cancels nothing twice.
    await harness.send(CancelShipment(order_id=order_id, reason="again", requested_by="jane"))
    assert len(await harness.of_type(order_id, ShipmentCancelled)) == 2
    assert len(await harness.of_type(order_id, FulfilmentCancelled)) == 2


async def test_cancel_shipment_is_refused_when_part_of_the_order_has_shipped(db: Database) -> None:
    harness = Harness(db, manual=frozenset({"WH-BER"}))
    order_id = uuid4()
    await harness.send(ship_order(order_id))  # WH-LON ships at once, WH-BER waits for its staff
    await harness.send(CancelShipment(order_id=order_id, reason="too late", requested_by="jane"))
    [refused] = await harness.of_type(order_id, ShipmentCancellationRefused)
    assert isinstance(refused, ShipmentCancellationRefused)
    assert refused.shipped_shipment_ids == [shipment_id_for(order_id, "WH-LON")]
    assert await harness.of_type(order_id, ShipmentCancelled) == []
    assert {r["warehouse_id"]: r["status"] for r in await harness.projection(order_id)} == {
        "WH-BER": "created",
        "WH-LON": "shipped",
    }


async def test_a_tracking_number_collision_is_retried_with_new_numbers(db: Database) -> None:
    # The first order takes numbers 1 and 2; the second draws 2 (taken): its transaction is rolled back and
    # the retry draws 3 and 4.
    entropy = iter([1, 2, 2, 3, 4, 5])
    harness = Harness(db, entropy=lambda: next(entropy))
    first, second = uuid4(), uuid4()
    await harness.send(ship_order(first))
    assert await harness.send(ship_order(second)) is Outcome.PROCESSED
    numbers = [s.tracking_number for s in await harness.shipped(first) + await harness.shipped(second)]
    assert len(set(numbers)) == 4
    assert next(entropy) == 5, "the colliding attempt should have been rolled back and retried"
    assert harness.dead_letters.sent == []


async def test_the_address_never_reaches_the_logs(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = LogCapture()
    logger: Any = structlog.wrap_logger(None, processors=[captured])
    monkeypatch.setattr(fulfilment_service.handlers, "log", logger)
    await harness.send(ship_order(uuid4()))
    logged = repr(captured.entries)
    assert "shipment handed to carrier" in logged
    for personal in ("Jane Doe", "Example Street", "10115"):
        assert personal not in logged


async def test_the_projections_are_rebuilt_from_the_event_store(db: Database) -> None:
    harness = Harness(db, manual=frozenset({"WH-BER"}))
    order_id = uuid4()
    await harness.send(ship_order(order_id))
    await harness.send(CancelShipment(order_id=order_id, reason="x", requested_by="y"))  # refused: WH-LON shipped
    other = uuid4()
    await harness.send(ship_order(other))
    await harness.send(CancelShipment(order_id=other, reason="x", requested_by="y"))
    await harness.send(
        AuthoriseReturn(
            order_id=order_id,
            return_id=uuid4(),
            lines=[Allocation(sku="SKU-MUG-BLUE", warehouse_id="WH-LON", quantity=1)],
            reason="broken",
        )
    )

    async def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with db.transaction() as session:
            tables = []
            for table in (shipment_views, return_views):
                rows = (await session.execute(select(table).order_by(table.c.order_id, table.c.version))).mappings()
                tables.append([{k: v for k, v in r.items() if k not in ("created_at", "updated_at")} for r in rows])
        return tables[0], tables[1]

    before = await snapshot()
    assert {r["status"] for r in before[0]} >= {"shipped", "created", "cancelled"}
    assert len(before[1]) >= 1
    result = await rebuild(db, REGISTRY)
    assert result.shipments == len(before[0])
    assert result.returns == len(before[1])
    assert await snapshot() == before
