"""Backorders, replenishment and returns on the real PostgreSQL: a backorder waits and is served oldest
first when stock arrives (goods receipt, purchase order, return), a cancel drops it, a purchase order is
raised at the reorder point and never twice while one is open (the database refuses a second), and a
return is restocked once."""

from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import uuid4

import pytest
import pytest_asyncio
from inventory_kit import Kit, inventory_kit, reserve
from sqlalchemy.exc import IntegrityError

from inventory_service.commands import PurchaseOrderClosedError
from inventory_service.domain.replenishment import PolicyError, ReplenishmentPolicy
from inventory_service.ledger import StockLevelError
from oms_events.messages import (
    ItemsRestocked,
    PurchaseOrderRaised,
    PurchaseOrderReceived,
    ReleaseStock,
    RestockItems,
    StockBackordered,
    StockLevelChanged,
    StockReleased,
    StockReserved,
)
from oms_events.values import Allocation, Shortage


@pytest_asyncio.fixture
async def kit() -> AsyncIterator[Kit]:
    async with inventory_kit(ttl=timedelta(minutes=30)) as k:
        yield k


async def test_a_backorder_waits_and_the_oldest_is_served_first_when_goods_arrive(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 1})
    oldest, younger, impatient = uuid4(), uuid4(), uuid4()
    await kit.harness.send(reserve(oldest, ("A", 3), backorder=True))
    await kit.harness.send(reserve(younger, ("A", 1), backorder=True))
    await kit.harness.send(reserve(impatient, ("A", 3)))

    [waiting] = await kit.answers(oldest)
    assert waiting == StockBackordered(order_id=oldest, shortages=[Shortage(sku="A", requested=3, available=1)])
    # Units on the shelf are sold to whoever asks: the younger order gets the one unit at once. What
    # arrives later goes to the waiting backorders first, oldest first.
    assert isinstance((await kit.answers(younger))[0], StockReserved)
    assert not isinstance((await kit.answers(impatient))[0], StockBackordered)
    assert await kit.status(oldest) == "backordered"

    # Two units arrive: not enough for the oldest (3), which keeps its place.
    await kit.commands.receive_goods("A", "WH-BER", 2, "ASN-1")
    assert await kit.status(oldest) == "backordered"
    await kit.commands.receive_goods("A", "WH-BER", 1, "ASN-2")
    assert await kit.status(oldest) == "reserved"
    [_, reserved] = await kit.answers(oldest)
    assert isinstance(reserved, StockReserved)
    assert reserved.allocations == [Allocation(sku="A", warehouse_id="WH-BER", quantity=3)]
    levels = (await kit.levels("A"))["WH-BER"]
    assert (levels.on_hand, levels.reserved) == (4, 4)


async def test_backorders_are_served_in_the_order_they_came(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 0})
    first, second, third = uuid4(), uuid4(), uuid4()
    for order_id in (first, second, third):
        await kit.harness.send(reserve(order_id, ("A", 2), backorder=True))
    await kit.commands.receive_goods("A", "WH-BER", 5, None)
    assert [await kit.status(o) for o in (first, second, third)] == ["reserved", "reserved", "backordered"]
    # A re-sent command of the waiting order gets the same answer; nothing is reserved for it.
    await kit.harness.send(reserve(third, ("A", 2), backorder=True))
    assert [type(m) for m in await kit.answers(third)] == [StockBackordered, StockBackordered]


async def test_cancelling_a_backorder_drops_it(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 0})
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 2), backorder=True))
    await kit.harness.send(ReleaseStock(order_id=order_id, reason="order cancelled"))
    assert isinstance((await kit.answers(order_id))[-1], StockReleased)
    await kit.commands.receive_goods("A", "WH-BER", 5, None)
    assert await kit.status(order_id) == "released"
    assert (await kit.levels("A"))["WH-BER"].reserved == 0


async def test_a_purchase_order_is_raised_at_the_reorder_point_and_never_twice(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 10})
    policy = ReplenishmentPolicy(
        "A", "WH-BER", reorder_point=4, reorder_quantity=None, order_up_to=20, lead_time_days=3
    )
    assert await kit.commands.put_policy(policy) is None  # 10 available: above the reorder point

    await kit.harness.send(reserve(uuid4(), ("A", 5)))  # available 5: nothing yet
    assert not [m for m in await kit.sent("A") if isinstance(m, PurchaseOrderRaised)]
    await kit.harness.send(reserve(uuid4(), ("A", 1)))  # available 4: at the reorder point
    await kit.harness.send(reserve(uuid4(), ("A", 2)))  # still below: the open one is on its way
    [raised] = [m for m in await kit.sent("A") if isinstance(m, PurchaseOrderRaised)]
    assert (raised.quantity, raised.available, raised.reorder_point) == (16, 4, 4)  # up to 20
    assert raised.expected_by == kit.clock().date() + timedelta(days=3)

    # The database itself refuses a second open purchase order for the same sku and warehouse.
    with pytest.raises(IntegrityError):
        await kit.execute(
            "INSERT INTO purchase_orders (purchase_order_id, sku, warehouse_id, quantity, status, expected_by) "
            "VALUES (:id, 'A', 'WH-BER', 5, 'open', CURRENT_DATE)",
            id=uuid4(),
        )

    received = await kit.commands.receive_purchase_order(raised.purchase_order_id, None)
    assert (received.status, received.received_quantity) == ("received", 16)
    level = (await kit.levels("A"))["WH-BER"]
    assert (level.on_hand, level.reserved) == (26, 8)
    assert [type(m) for m in await kit.sent("A")][-2:] == [PurchaseOrderReceived, StockLevelChanged]
    with pytest.raises(PurchaseOrderClosedError):
        await kit.commands.receive_purchase_order(raised.purchase_order_id, None)


async def test_a_fixed_reorder_quantity_and_a_policy_that_applies_at_once(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 2})
    policy = ReplenishmentPolicy(
        "A", "WH-BER", reorder_point=5, reorder_quantity=50, order_up_to=None, lead_time_days=0
    )
    raised_id = await kit.commands.put_policy(policy)
    assert raised_id is not None
    [raised] = [m for m in await kit.sent("A") if isinstance(m, PurchaseOrderRaised)]
    assert (raised.purchase_order_id, raised.quantity) == (raised_id, 50)


def test_a_policy_needs_exactly_one_way_to_size_the_order() -> None:
    with pytest.raises(PolicyError, match="exactly one"):
        ReplenishmentPolicy("A", "WH", reorder_point=1, reorder_quantity=5, order_up_to=10, lead_time_days=1)
    with pytest.raises(PolicyError, match="above the reorder point"):
        ReplenishmentPolicy("A", "WH", reorder_point=10, reorder_quantity=None, order_up_to=10, lead_time_days=1)
    with pytest.raises(PolicyError, match="lead_time_days"):
        ReplenishmentPolicy("A", "WH", reorder_point=1, reorder_quantity=5, order_up_to=None, lead_time_days=-1)


async def test_a_purchase_order_receipt_releases_waiting_backorders(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 0})
    policy = ReplenishmentPolicy("A", "WH-BER", reorder_point=0, reorder_quantity=4, order_up_to=None, lead_time_days=2)
    purchase_order_id = await kit.commands.put_policy(policy)
    assert purchase_order_id is not None
    order_id = uuid4()
    await kit.harness.send(reserve(order_id, ("A", 3), backorder=True))
    await kit.commands.receive_purchase_order(purchase_order_id, None)
    assert await kit.status(order_id) == "reserved"
    # 4 arrived, 3 went to the backorder: 1 available is above the reorder point 0, so nothing new.
    assert len([m for m in await kit.sent("A") if isinstance(m, PurchaseOrderRaised)]) == 1


async def test_adjustments_never_leave_less_than_nothing(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 3})
    await kit.harness.send(reserve(uuid4(), ("A", 2)))
    with pytest.raises(StockLevelError):
        await kit.commands.adjust("A", "WH-BER", -2, "damaged", "tester")
    level = await kit.commands.adjust("A", "WH-BER", -1, "damaged", "tester")
    assert (level.on_hand, level.reserved) == (2, 2)
    [*_, changed] = await kit.sent("A")
    assert isinstance(changed, StockLevelChanged)
    assert (changed.cause, changed.reason, changed.on_hand_change) == ("adjustment", "damaged", -1)


async def test_a_return_is_restocked_once(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 1})
    order_id, return_id = uuid4(), uuid4()
    command = RestockItems(
        order_id=order_id, return_id=return_id, lines=[Allocation(sku="A", warehouse_id="WH-LON", quantity=2)]
    )
    await kit.harness.send(command)
    await kit.harness.send(command.model_copy())  # the same command re-sent (a new message id)
    answers = await kit.answers(order_id)
    assert answers == [ItemsRestocked(order_id=order_id, return_id=return_id, lines=command.lines)] * 2
    assert (await kit.levels("A"))["WH-LON"].on_hand == 2
    [changed] = [m for m in await kit.sent("A") if isinstance(m, StockLevelChanged)]
    assert (changed.cause, changed.reference) == ("restock", str(return_id))
