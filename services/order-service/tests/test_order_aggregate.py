"""The Order aggregate and the saga's decisions, without I/O."""

from uuid import uuid4

import pytest
from order_test_builders import captured, placed_order, reserved_order, run, shipped, status

from oms_events.messages import (
    Event,
    PaymentDeclined,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Allocation, DeliveryMethod, Shortage
from order_service.domain.order import NOTHING, Order, OrderStateError, OrderStatus


def test_placing_records_the_order_and_asks_for_stock() -> None:
    placed = placed_order()
    decision = Order.place(placed)
    assert decision.events == (placed,)
    [command] = decision.commands
    assert isinstance(command, ReserveStock)
    assert [(line.sku, line.quantity) for line in command.lines] == [("SKU-A", 2), ("SKU-B", 1)]


def test_happy_path_to_shipped() -> None:
    order, _ = reserved_order()
    decision = run(order, order.on_payment_captured(captured(order)))
    assert status(order) is OrderStatus.CONFIRMED
    [ship] = decision.commands
    assert isinstance(ship, ShipOrder)
    assert ship.delivery_method is DeliveryMethod.EXPEDITED
    run(order, order.on_shipped(shipped(order, "WH-1")))
    assert status(order) is OrderStatus.SHIPPED
    assert order.version == 4


def test_split_order_is_partially_shipped_until_every_warehouse_shipped() -> None:
    order, _ = reserved_order(
        [
            Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2),
            Allocation(sku="SKU-B", warehouse_id="WH-2", quantity=1),
        ]
    )
    run(order, order.on_payment_captured(captured(order)))
    first = shipped(order, "WH-2")
    run(order, order.on_shipped(first))
    assert status(order) is OrderStatus.PARTIALLY_SHIPPED
    assert order.on_shipped(first) == NOTHING  # the same warehouse again changes nothing
    run(order, order.on_shipped(shipped(order, "WH-1")))
    assert status(order) is OrderStatus.SHIPPED


def test_out_of_stock_rejects_without_payment() -> None:
    placed = placed_order()
    order = Order(placed.order_id)
    run(order, Order.place(placed))
    decision = run(
        order,
        order.on_stock_reservation_failed(
            StockReservationFailed(
                order_id=order.order_id, reason="short", shortages=[Shortage(sku="SKU-B", requested=1, available=0)]
            )
        ),
    )
    assert status(order) is OrderStatus.REJECTED
    assert decision.commands == ()
    assert "SKU-B" in (order.rejection_reason or "")


def test_payment_declined_releases_stock_then_rejects() -> None:
    order, reservation = reserved_order()
    decision = run(
        order,
        order.on_payment_declined(
            PaymentDeclined(order_id=order.order_id, payment_id=uuid4(), reason_code="insufficient_funds", reason="no")
        ),
    )
    assert status(order) is OrderStatus.RELEASING_STOCK
    [release] = decision.commands
    assert isinstance(release, ReleaseStock)
    run(
        order,
        order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=reservation.reservation_id)),
    )
    assert status(order) is OrderStatus.REJECTED


def test_duplicate_and_late_replies_decide_nothing() -> None:
    order, reply = reserved_order()
    assert order.on_stock_reserved(reply, "tok_approve") == NOTHING
    payment = captured(order)
    run(order, order.on_payment_captured(payment))
    assert order.on_payment_captured(payment) == NOTHING
    assert (
        order.on_payment_declined(
            PaymentDeclined(order_id=order.order_id, payment_id=uuid4(), reason_code="x", reason="x")
        )
        == NOTHING
    )
    assert order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=None)) == NOTHING


def test_state_is_rebuilt_from_history() -> None:
    order, _ = reserved_order()
    history: list[Event] = []
    placed = order.placed
    assert placed is not None
    live = Order(order.order_id)
    for decision in (Order.place(placed),):
        history.extend(run(live, decision).events)
    history.extend(
        run(
            live,
            live.on_stock_reserved(
                StockReserved(
                    order_id=order.order_id,
                    reservation_id=uuid4(),
                    allocations=[Allocation(sku="SKU-A", warehouse_id="WH-9", quantity=2)],
                ),
                "tok",
            ),
        ).events
    )
    history.extend(run(live, live.on_payment_captured(captured(live))).events)

    rebuilt = Order.from_history(order.order_id, history)
    assert status(rebuilt) is OrderStatus.CONFIRMED
    assert rebuilt.version == 3
    assert rebuilt.allocations == live.allocations
    assert rebuilt.payment_id == live.payment_id


def test_a_reply_for_an_order_that_does_not_exist_is_an_error() -> None:
    order = Order(uuid4())
    with pytest.raises(OrderStateError):
        order.on_payment_captured(captured(order))
