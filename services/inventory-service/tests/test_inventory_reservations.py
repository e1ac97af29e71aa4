"""Reservations on the real PostgreSQL: every change of stock is a StockLevelChanged keyed by sku, a
reservation expires when it is not paid for in time, paid ones never do, and re-sent commands get their
first answer."""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest_asyncio
from inventory_kit import BERLIN, LONDON, Kit, inventory_kit, reserve

from oms_events.messages import (
    PaymentCaptured,
    ReleaseStock,
    ReservationExpired,
    Shipped,
    StockLevelChanged,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Allocation
from oms_runtime.messaging import Outcome


@pytest_asyncio.fixture
async def kit() -> AsyncIterator[Kit]:
    async with inventory_kit(ttl=timedelta(minutes=30)) as k:
        yield k


def shipped(order_id: object, warehouse_id: str) -> Shipped:
    return Shipped(
        order_id=order_id,
        shipment_id=uuid4(),
        warehouse_id=warehouse_id,
        carrier="DHL",
        tracking_number="T1",
        tracking_url="https://example.com/T1",
        estimated_delivery=date(2026, 1, 2),
    )


async def test_a_reservation_changes_levels_and_says_so_per_sku_in_order(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 5})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2)))

    [answer] = await kit.answers(order_id)
    assert isinstance(answer, StockReserved)
    assert answer.allocations == [Allocation(sku="A", warehouse_id="WH-BER", quantity=2)]
    [changed] = await kit.sent("A")
    assert isinstance(changed, StockLevelChanged)
    assert (changed.on_hand, changed.reserved, changed.available, changed.sequence) == (5, 2, 3, 1)
    assert (changed.cause, changed.order_id, changed.reserved_change) == ("reservation", order_id, 2)

    await kit.harness.send(shipped(order_id, "WH-BER"))
    [_, taken] = await kit.sent("A")
    assert isinstance(taken, StockLevelChanged)
    assert (taken.cause, taken.on_hand, taken.reserved, taken.sequence) == ("shipment", 3, 0, 2)
    assert await kit.status(order_id) == "committed"


async def test_a_reservation_not_paid_in_time_is_released_with_an_event(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 3})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 3)))
    assert await kit.expirer().sweep() == 0  # not due yet

    kit.clock.advance(timedelta(minutes=31))
    assert await kit.expirer().sweep() == 1
    assert await kit.expirer().sweep() == 0  # once

    [reserved, expired] = await kit.answers(order_id)
    assert isinstance(reserved, StockReserved)
    assert isinstance(expired, ReservationExpired)
    assert expired.reservation_id == reserved.reservation_id
    assert expired.allocations == reserved.allocations
    assert (await kit.levels("A"))["WH-BER"].reserved == 0
    assert [e.cause for e in await kit.sent("A") if isinstance(e, StockLevelChanged)] == ["reservation", "expiry"]
    assert await kit.status(order_id) == "expired"

    # The saga's release after the expiry still gets its answer; a re-sent reservation is refused.
    await kit.harness.send(ReleaseStock(order_id=order_id, reason="reservation expired"))
    await kit.harness.send(reserve(order_id, ("A", 3)))
    [*_, released, refused] = await kit.answers(order_id)
    assert isinstance(released, StockReleased)
    assert isinstance(refused, StockReservationFailed)
    assert "expired" in refused.reason
    assert (await kit.levels("A"))["WH-BER"].reserved == 0


async def test_a_paid_reservation_never_expires(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 3})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 1)))
    await kit.harness.send(
        PaymentCaptured(order_id=order_id, payment_id=uuid4(), amount_minor=100, currency="EUR", gateway_reference="g")
    )
    kit.clock.advance(timedelta(days=3))
    assert await kit.expirer().sweep() == 0
    assert (await kit.levels("A"))["WH-BER"].reserved == 1
    assert await kit.status(order_id) == "reserved"


async def test_expiry_can_be_switched_off() -> None:
    async with inventory_kit(ttl=None) as kit:
        await kit.stock("A", {"WH-BER": 3})
        order_id = uuid4()
        await kit.harness.send(reserve(order_id, ("A", 1)))
        kit.clock.now = datetime(2100, 1, 1, tzinfo=UTC)
        assert await kit.expirer().sweep() == 0


async def test_a_resent_reservation_gets_its_first_answer_and_reserves_nothing_twice(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 3, "WH-LON": 3})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2)))
    assert await kit.harness.send(reserve(order_id, ("A", 2))) is Outcome.PROCESSED
    first, second = await kit.answers(order_id)
    assert first == second
    levels = await kit.levels("A")
    assert sum(lvl.reserved for lvl in levels.values()) == 2


async def test_releasing_a_split_reservation_gives_every_warehouse_its_units_back(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 3, "WH-LON": 2}, (BERLIN, LONDON))
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 5)))
    await kit.harness.send(ReleaseStock(order_id=order_id, reason="payment declined"))
    levels = await kit.levels("A")
    assert {wh: (lvl.on_hand, lvl.reserved) for wh, lvl in levels.items()} == {"WH-BER": (3, 0), "WH-LON": (2, 0)}
    causes = [(e.warehouse_id, e.cause) for e in await kit.sent("A") if isinstance(e, StockLevelChanged)]
    assert sorted(causes) == [
        ("WH-BER", "release"),
        ("WH-BER", "reservation"),
        ("WH-LON", "release"),
        ("WH-LON", "reservation"),
    ]
