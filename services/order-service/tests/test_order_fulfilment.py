"""The saga once fulfilment has started: shipment progress for tracking, a fulfilment failure after the
capture, and a customer's cancel while the warehouses work. Pure (the aggregate's decisions)."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from order_test_builders import captured, reserved_order, run, shipped, status

from oms_events.messages import (
    AuthoriseReturn,
    CancelShipment,
    FulfilmentCancelled,
    FulfilmentFailed,
    ItemsRestocked,
    OrderCancellationRefused,
    OrderCancelled,
    OrderReturnCompleted,
    OrderReturnRefunded,
    OrderReturnRestocked,
    OrderShipmentUpdated,
    OrderShortShipped,
    OrderShortShipRefunded,
    PaymentRefunded,
    RefundPayment,
    ReleaseStock,
    RestockItems,
    ReturnAuthorised,
    ReturnInspected,
    ReturnReceived,
    ShipmentCancellationRefused,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentInTransit,
    ShipmentPicked,
    ShipOrder,
    StockReleased,
)
from oms_events.values import Allocation
from order_service.domain.order import Decision, Order, OrderStatus, ReturnNotAllowedError

SPLIT = [
    Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2),
    Allocation(sku="SKU-B", warehouse_id="WH-2", quantity=1),
]


def confirmed(allocations: list[Allocation] | None = None) -> Order:
    order, _ = reserved_order(allocations)
    decision = run(order, order.on_payment_captured(captured(order)))
    assert [type(c) for c in decision.commands] == [ShipOrder]
    return order


def created(order: Order, warehouse: str) -> UUID:
    shipment_id = uuid4()
    lines = [a for a in order.allocations if a.warehouse_id == warehouse]
    run(
        order,
        order.on_shipment_progress(
            ShipmentCreated(
                order_id=order.order_id, shipment_id=shipment_id, warehouse_id=warehouse, lines=lines, mode="manual"
            )
        ),
    )
    return shipment_id


def failed(order: Order, shipment_id: UUID, warehouse: str) -> FulfilmentFailed:
    return FulfilmentFailed(
        order_id=order.order_id, shipment_id=shipment_id, warehouse_id=warehouse, reason_code="short_pick", reason="x"
    )


def refunded(order: Order) -> PaymentRefunded:
    assert order.payment_id is not None
    return PaymentRefunded(
        order_id=order.order_id, payment_id=order.payment_id, refund_id=uuid4(), amount_minor=2000, currency="EUR"
    )


def test_progress_is_recorded_once_and_fulfilment_taking_the_order_stops_the_countdown() -> None:
    order = confirmed()
    assert not order.fulfilment_accepted
    shipment_id = created(order, "WH-1")
    assert order.fulfilment[shipment_id].status == "created"
    assert order.fulfilment_accepted
    again = ShipmentCreated(
        order_id=order.order_id,
        shipment_id=shipment_id,
        warehouse_id="WH-1",
        lines=list(order.allocations),
        mode="manual",
    )
    assert order.on_shipment_progress(again).empty
    automatic = again.model_copy(update={"shipment_id": uuid4(), "mode": "automatic"})
    assert order.on_shipment_progress(automatic).empty, "an automatic warehouse's steps are not recorded"
    short = ShipmentPicked(
        order_id=order.order_id,
        shipment_id=shipment_id,
        warehouse_id="WH-1",
        picked=[order.allocations[0]],
        short=[order.allocations[1]],
    )
    decision = run(order, order.on_shipment_progress(short))
    update, short_shipped = decision.events
    assert isinstance(update, OrderShipmentUpdated)
    assert (update.status, update.note) == ("picked", "short pick: 1 x SKU-B")
    # The missing SKU-B (1000) is refunded; the rest ships.
    assert isinstance(short_shipped, OrderShortShipped)
    assert short_shipped.refund_minor == 1000
    [refund] = decision.commands
    assert isinstance(refund, RefundPayment)
    assert refund.amount_minor == 1000
    answer = PaymentRefunded(
        order_id=order.order_id, payment_id=refund.payment_id, refund_id=uuid4(), amount_minor=1000, currency="EUR"
    )
    [refunded_short] = run(order, order.on_payment_refunded(answer)).events
    assert isinstance(refunded_short, OrderShortShipRefunded)
    assert order.on_payment_refunded(answer).empty
    # A cancel now refunds only what is left of the payment.
    [cancel] = run(order, order.request_cancel("changed my mind", "customer")).commands
    assert isinstance(cancel, CancelShipment)
    stopped = FulfilmentCancelled(order_id=order.order_id, shipment_ids=[shipment_id], reason="x")
    [rest] = run(order, order.on_fulfilment_cancelled(stopped)).commands
    assert isinstance(rest, RefundPayment)
    assert rest.amount_minor == 1000


def test_carrier_updates_reach_tracking_but_a_superseded_one_does_not() -> None:
    order = confirmed()
    reply = shipped(order, "WH-1")
    run(order, order.on_shipped(reply))
    assert status(order) is OrderStatus.SHIPPED
    at = datetime(2026, 3, 5, 11, tzinfo=UTC)
    fields = {
        "order_id": order.order_id,
        "shipment_id": reply.shipment_id,
        "carrier": "DHL",
        "tracking_number": reply.tracking_number,
    }
    delivered = ShipmentDelivered(**fields, reported_at=at, location="Berlin")
    [update] = run(order, order.on_shipment_progress(delivered)).events
    assert isinstance(update, OrderShipmentUpdated)
    assert (update.status, update.location, update.warehouse_id) == ("delivered", "Berlin", "WH-1")
    late = ShipmentInTransit(**fields, reported_at=at, superseded=True)
    assert order.on_shipment_progress(late).empty
    assert order.fulfilment[reply.shipment_id].status == "delivered"


def test_fulfilment_failed_after_capture_refunds_then_releases_then_cancels() -> None:
    order = confirmed()
    shipment_id = created(order, "WH-1")
    decision = run(order, order.on_fulfilment_failed(failed(order, shipment_id, "WH-1")))
    [refund] = decision.commands
    assert isinstance(refund, RefundPayment)
    assert (refund.amount_minor, refund.payment_id) == (2000, order.payment_id)
    assert status(order) is OrderStatus.CANCELLING
    [release] = run(order, order.on_payment_refunded(refunded(order))).commands
    assert isinstance(release, ReleaseStock)
    final = run(order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=uuid4())))
    cancelled = final.events[-1]
    assert isinstance(cancelled, OrderCancelled)
    assert cancelled.reason_code == "fulfilment_failed"
    assert "refunded" in cancelled.customer_message
    assert status(order) is OrderStatus.CANCELLED


def test_a_failed_warehouse_of_a_split_order_cancels_the_others_first() -> None:
    order = confirmed(SPLIT)
    first, second = created(order, "WH-1"), created(order, "WH-2")
    [cancel] = run(order, order.on_fulfilment_failed(failed(order, first, "WH-1"))).commands
    assert isinstance(cancel, CancelShipment)
    answer = FulfilmentCancelled(order_id=order.order_id, shipment_ids=[second], reason="x")
    [refund] = run(order, order.on_fulfilment_cancelled(answer)).commands
    assert isinstance(refund, RefundPayment)
    assert order.on_fulfilment_cancelled(answer).empty, "a repeated answer refunds nothing twice"


def test_a_failed_warehouse_after_another_shipped_gives_that_warehouse_up() -> None:
    order = confirmed(SPLIT)
    first = created(order, "WH-1")
    created(order, "WH-2")
    run(order, order.on_shipped(shipped(order, "WH-2")))
    assert status(order) is OrderStatus.PARTIALLY_SHIPPED
    decision = run(order, order.on_fulfilment_failed(failed(order, first, "WH-1")))
    # WH-1's two SKU-A (500 each) will not ship: refunded; the order counts as shipped.
    [refund] = decision.commands
    assert isinstance(refund, RefundPayment)
    assert refund.amount_minor == 1000
    assert status(order) is OrderStatus.SHIPPED


def test_a_cancel_after_confirmation_asks_fulfilment_and_undoes_when_it_stopped_everything() -> None:
    order = confirmed()
    shipment_id = created(order, "WH-1")
    [cancel] = run(order, order.request_cancel("changed my mind", "customer")).commands
    assert isinstance(cancel, CancelShipment)
    assert status(order) is OrderStatus.CANCELLING
    answer = FulfilmentCancelled(order_id=order.order_id, shipment_ids=[shipment_id], reason="changed my mind")
    [refund] = run(order, order.on_fulfilment_cancelled(answer)).commands
    assert isinstance(refund, RefundPayment)
    [release] = run(order, order.on_payment_refunded(refunded(order))).commands
    assert isinstance(release, ReleaseStock)
    final = run(order, order.on_stock_released(StockReleased(order_id=order.order_id, reservation_id=uuid4())))
    assert isinstance(final.events[-1], OrderCancelled)
    assert final.events[-1].reason_code == "requested"


def test_a_cancel_that_comes_too_late_is_refused_and_the_order_goes_on() -> None:
    order = confirmed(SPLIT)
    created(order, "WH-1")
    created(order, "WH-2")
    run(order, order.request_cancel("changed my mind", "customer"))
    # The shipment left while the cancel was on its way: recorded all the same.
    assert run(order, order.on_shipped(shipped(order, "WH-1"))).events
    assert status(order) is OrderStatus.CANCELLING
    refusal = ShipmentCancellationRefused(order_id=order.order_id, shipped_shipment_ids=[uuid4()], reason="left")
    [refused] = run(order, order.on_cancellation_refused(refusal)).events
    assert isinstance(refused, OrderCancellationRefused)
    assert status(order) is OrderStatus.PARTIALLY_SHIPPED
    assert order.compensating is None
    run(order, order.on_shipped(shipped(order, "WH-2")))
    assert status(order) is OrderStatus.SHIPPED


def delivered_order() -> Order:
    """Two SKU-A at 500 and one SKU-B at 1000, shipped from WH-1 and delivered."""
    order = confirmed()
    reply = shipped(order, "WH-1")
    run(order, order.on_shipped(reply))
    update = ShipmentDelivered(
        order_id=order.order_id,
        shipment_id=reply.shipment_id,
        carrier="DHL",
        tracking_number=reply.tracking_number,
        reported_at=datetime(2026, 3, 5, tzinfo=UTC),
    )
    run(order, order.on_shipment_progress(update))
    return order


def inspect(order: Order, return_id: UUID, sellable: list[Allocation], unsellable: list[Allocation]) -> Decision:
    lines = order.returns[return_id].lines
    authorised = ReturnAuthorised(order_id=order.order_id, return_id=return_id, lines=lines)
    assert run(order, order.on_return_authorised(authorised)).events
    assert order.on_return_authorised(authorised).empty
    received = ReturnReceived(order_id=order.order_id, return_id=return_id, received_by="wh")
    assert run(order, order.on_return_received(received)).events
    assert order.returns[return_id].status == "received"
    return run(
        order,
        order.on_return_inspected(
            ReturnInspected(
                order_id=order.order_id,
                return_id=return_id,
                sellable=sellable,
                unsellable=unsellable,
                inspected_by="wh",
            )
        ),
    )


def test_nothing_can_be_returned_before_delivery() -> None:
    order = confirmed()
    run(order, order.on_shipped(shipped(order, "WH-1")))
    with pytest.raises(ReturnNotAllowedError, match="nothing of the order has been delivered"):
        order.request_return(uuid4(), {"SKU-A": 1}, "broken", "customer")


def test_a_full_return_restocks_what_sells_and_refunds_everything() -> None:
    order = delivered_order()
    return_id = uuid4()
    [authorise] = run(
        order, order.request_return(return_id, {"SKU-A": 2, "SKU-B": 1}, "too small", "customer")
    ).commands
    assert isinstance(authorise, AuthoriseReturn)
    assert sorted((line.sku, line.warehouse_id, line.quantity) for line in authorise.lines) == [
        ("SKU-A", "WH-1", 2),
        ("SKU-B", "WH-1", 1),
    ]
    with pytest.raises(ReturnNotAllowedError, match="all of it is being returned"):
        order.request_return(uuid4(), {"SKU-A": 1}, "again", "customer")
    sellable = [Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2)]
    broken = [Allocation(sku="SKU-B", warehouse_id="WH-1", quantity=1)]
    restock, refund = inspect(order, return_id, sellable, broken).commands
    assert isinstance(restock, RestockItems)
    assert (restock.return_id, restock.lines) == (return_id, sellable)
    assert isinstance(refund, RefundPayment)
    assert (refund.amount_minor, refund.reason) == (2000, f"return {return_id}")
    # The refund and the restock may answer in either order; the return completes with the second.
    assert [type(e) for e in run(order, order.on_payment_refunded(refunded(order))).events] == [OrderReturnRefunded]
    restocked = ItemsRestocked(order_id=order.order_id, return_id=return_id, lines=sellable)
    events = run(order, order.on_items_restocked(restocked)).events
    assert [type(e) for e in events] == [OrderReturnRestocked, OrderReturnCompleted]
    assert order.returns[return_id].status == "completed"
    assert order.on_items_restocked(restocked).empty
    assert status(order) is OrderStatus.SHIPPED


def test_a_partial_return_refunds_only_its_lines() -> None:
    order = delivered_order()
    return_id = uuid4()
    run(order, order.request_return(return_id, {"SKU-A": 1}, "one too many", "ops-anna"))
    [refund] = inspect(order, return_id, [], [Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=1)]).commands
    assert isinstance(refund, RefundPayment)
    assert refund.amount_minor == 500
    answer = PaymentRefunded(
        order_id=order.order_id, payment_id=refund.payment_id, refund_id=uuid4(), amount_minor=500, currency="EUR"
    )
    events = run(order, order.on_payment_refunded(answer)).events
    assert [type(e) for e in events] == [OrderReturnRefunded, OrderReturnCompleted]
    # One SKU-A and the SKU-B are still delivered and not returned.
    assert order.returnable() == {("SKU-A", "WH-1"): 1, ("SKU-B", "WH-1"): 1}
    with pytest.raises(ReturnNotAllowedError, match="SKU-A: 2 to return, but 1 delivered and not returned"):
        order.request_return(uuid4(), {"SKU-A": 2}, "more", "customer")
