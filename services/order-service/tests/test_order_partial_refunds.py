"""A partial refund (units not shipped, or a return) that fails or goes unanswered parks only that refund:
the order goes on, a later Shipped is applied, and an operator retries, skips or resolves the refund.
Pure (the aggregate's decisions)."""

from uuid import UUID, uuid4

import pytest
from order_test_builders import run, shipped, status
from test_order_fulfilment import confirmed, created, delivered_order, inspect

from oms_events.messages import (
    FulfilmentFailed,
    ItemsRestocked,
    OrderRefundActionTaken,
    OrderRefundFailed,
    OrderReturnCompleted,
    OrderReturnRefunded,
    OrderShipped,
    OrderShortShipRefunded,
    OrderStepTimedOut,
    PaymentRefunded,
    PaymentRefundFailed,
    RefundPayment,
    ShipmentPicked,
)
from oms_events.values import Allocation
from order_service.domain.order import ActionNotAllowedError, Order, OrderStatus, Step


def short_picked(order: Order) -> tuple[UUID, RefundPayment]:
    """WH-1 picks the SKU-A but not the SKU-B (1000): that much is refunded."""
    shipment_id = created(order, "WH-1")
    decision = run(
        order,
        order.on_shipment_progress(
            ShipmentPicked(
                order_id=order.order_id,
                shipment_id=shipment_id,
                warehouse_id="WH-1",
                picked=[order.allocations[0]],
                short=[order.allocations[1]],
            )
        ),
    )
    [refund] = decision.commands
    assert isinstance(refund, RefundPayment)
    return shipment_id, refund


def refused(order: Order, amount: int | None) -> PaymentRefundFailed:
    assert order.payment_id is not None
    return PaymentRefundFailed(
        order_id=order.order_id,
        payment_id=order.payment_id,
        reason_code="exceeds_captured",
        reason="nope",
        amount_minor=amount,
        currency="EUR" if amount is not None else None,
    )


def refunded(order: Order, amount: int) -> PaymentRefunded:
    assert order.payment_id is not None
    return PaymentRefunded(
        order_id=order.order_id, payment_id=order.payment_id, refund_id=uuid4(), amount_minor=amount, currency="EUR"
    )


def test_a_refused_short_ship_refund_parks_only_the_refund_and_the_order_still_ships() -> None:
    order = confirmed()
    shipment_id, _ = short_picked(order)
    key = f"short-ship:{shipment_id}"
    assert order.partial_refunds[key].status == "requested"
    [failed] = run(order, order.on_payment_refund_failed(refused(order, 1000))).events
    assert isinstance(failed, OrderRefundFailed)
    assert (failed.refund, failed.shipment_id, failed.amount_minor, failed.reason_code) == (
        key,
        shipment_id,
        1000,
        "exceeds_captured",
    )
    assert status(order) is OrderStatus.CONFIRMED, "the order itself does not wait for an operator"
    assert [r.refund for r in order.refunds_needing_attention] == [key]
    assert order.on_payment_refund_failed(refused(order, 1000)).empty, "a repeated answer decides nothing"
    # The warehouse goes on: its Shipped is applied.
    [shipped_event] = run(order, order.on_shipped(shipped(order, "WH-1"))).events
    assert isinstance(shipped_event, OrderShipped)
    assert status(order) is OrderStatus.SHIPPED
    assert order.refunds_needing_attention, "shipping does not forget the failed refund"


def test_retrying_a_refused_refund_sends_a_new_request_and_its_success_settles_it() -> None:
    order = confirmed()
    shipment_id, first = short_picked(order)
    run(order, order.on_payment_refund_failed(refused(order, 1000)))
    run(order, order.on_shipped(shipped(order, "WH-1")))
    decision = run(order, order.operator_action("retry", "ops-anna", "card updated", None))
    [taken] = decision.events
    assert isinstance(taken, OrderRefundActionTaken)
    assert (taken.action, taken.refund, taken.operator) == ("retry", f"short-ship:{shipment_id}", "ops-anna")
    [again] = decision.commands
    assert isinstance(again, RefundPayment)
    assert again.amount_minor == 1000
    # A refused request is refused again under the same idempotency key (derived from the content):
    # the retry must be a different request.
    assert again.reason != first.reason
    assert again.reason.startswith(first.reason)
    assert status(order) is OrderStatus.SHIPPED
    assert not order.refunds_needing_attention
    [done] = run(order, order.on_payment_refunded(refunded(order, 1000))).events
    assert isinstance(done, OrderShortShipRefunded)
    assert [(line.sku, line.quantity) for line in done.lines] == [("SKU-B", 1)], "what was refunded, for the customer"
    assert order.partial_refunds[f"short-ship:{shipment_id}"].status == "refunded"
    assert order.refunded_minor == 1000
    with pytest.raises(ActionNotAllowedError, match="not waiting for an operator"):
        order.operator_action("retry", "ops-anna", "again", None)


def test_an_unanswered_refund_is_parked_and_its_retry_repeats_the_same_request() -> None:
    order = confirmed()
    _, first = short_picked(order)
    decision = run(order, order.on_step_timed_out(Step.REFUND_PAYMENT, 3, first))
    timed_out, failed = decision.events
    assert isinstance(timed_out, OrderStepTimedOut)
    assert isinstance(failed, OrderRefundFailed)
    assert failed.reason_code == "no_answer"
    assert status(order) is OrderStatus.CONFIRMED
    # The first request may have been carried out: only the very same request (same key) is safe.
    [again] = run(order, order.operator_action("retry", "ops", "try again", None)).commands
    assert isinstance(again, RefundPayment)
    assert again == first


def test_a_failed_return_refund_after_shipping_is_parked_then_skipped_and_the_return_completes() -> None:
    order = delivered_order()
    assert status(order) is OrderStatus.SHIPPED
    return_id = uuid4()
    run(order, order.request_return(return_id, {"SKU-A": 1}, "too big", "customer"))
    sellable = [Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=1)]
    _, refund = inspect(order, return_id, sellable, []).commands
    assert isinstance(refund, RefundPayment)
    # A refund that never answers, in a shipped (final) order, is no longer dropped silently.
    [_, failed] = run(order, order.on_step_timed_out(Step.REFUND_PAYMENT, 3, refund)).events
    assert isinstance(failed, OrderRefundFailed)
    assert (failed.refund, failed.return_id) == (f"return:{return_id}", return_id)
    restocked = ItemsRestocked(order_id=order.order_id, return_id=return_id, lines=sellable)
    events = run(order, order.on_items_restocked(restocked)).events
    assert OrderReturnCompleted not in [type(e) for e in events], "the refund is not settled"
    with pytest.raises(ActionNotAllowedError, match="does not wait for an operator"):
        order.operator_action("skip", "ops", "x", None, refund="return:nope")
    taken, completed = run(
        order, order.operator_action("skip", "ops", "refunded as a voucher", None, refund=f"return:{return_id}")
    ).events
    assert isinstance(taken, OrderRefundActionTaken)
    assert isinstance(completed, OrderReturnCompleted)
    assert order.returns[return_id].status == "completed"
    assert order.partial_refunds[f"return:{return_id}"].status == "skipped"
    assert order.refunded_minor == 0, "a skipped refund moved no money"
    assert status(order) is OrderStatus.SHIPPED


def test_resolve_closes_the_refund_and_a_late_success_is_still_recorded() -> None:
    order = delivered_order()
    return_id = uuid4()
    run(order, order.request_return(return_id, {"SKU-B": 1}, "broken", "customer"))
    [refund] = inspect(order, return_id, [], [Allocation(sku="SKU-B", warehouse_id="WH-1", quantity=1)]).commands
    assert isinstance(refund, RefundPayment)
    run(order, order.on_step_timed_out(Step.REFUND_PAYMENT, 3, refund))
    taken, completed = run(order, order.operator_action("resolve", "ops", "refunded by bank transfer", None)).events
    assert isinstance(taken, OrderRefundActionTaken)
    assert isinstance(completed, OrderReturnCompleted), "nothing to restock, the refund settled: the return is done"
    assert order.partial_refunds[f"return:{return_id}"].status == "resolved"
    # The unanswered request did go through after all: the money movement is recorded, once.
    events = run(order, order.on_payment_refunded(refunded(order, 1000))).events
    assert [type(e) for e in events] == [OrderReturnRefunded]
    assert isinstance(events[0], OrderReturnRefunded)
    assert [(line.sku, line.quantity) for line in events[0].lines] == [("SKU-B", 1)]
    assert order.refunded_minor == 1000
    assert order.on_payment_refunded(refunded(order, 1000)).empty


def test_two_failed_refunds_must_be_named() -> None:
    order = confirmed(
        [
            Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=1),
            Allocation(sku="SKU-B", warehouse_id="WH-1", quantity=1),
            Allocation(sku="SKU-A", warehouse_id="WH-2", quantity=1),
        ]
    )
    shipment_id, _ = short_picked(order)
    # An answer without its amount (an older payment-service) still finds the only refund in flight.
    run(order, order.on_payment_refund_failed(refused(order, None)))
    assert [r.refund for r in order.refunds_needing_attention] == [f"short-ship:{shipment_id}"]
    run(order, order.on_shipped(shipped(order, "WH-1")))
    assert status(order) is OrderStatus.PARTIALLY_SHIPPED
    # WH-2 finds nothing after WH-1 shipped: its unit (500) is refunded, and that refund fails too.
    other = created(order, "WH-2")
    gave_up = FulfilmentFailed(
        order_id=order.order_id, shipment_id=other, warehouse_id="WH-2", reason_code="short_pick", reason="x"
    )
    [refund] = run(order, order.on_fulfilment_failed(gave_up)).commands
    assert isinstance(refund, RefundPayment)
    assert refund.amount_minor == 500
    run(order, order.on_payment_refund_failed(refused(order, 500)))
    assert status(order) is OrderStatus.SHIPPED
    assert len(order.refunds_needing_attention) == 2
    with pytest.raises(ActionNotAllowedError, match="several refunds wait for an operator"):
        order.operator_action("skip", "ops", "x", None)
    [taken] = run(order, order.operator_action("skip", "ops", "x", None, refund=f"short-ship:{shipment_id}")).events
    assert isinstance(taken, OrderRefundActionTaken)
    assert [r.refund for r in order.refunds_needing_attention] == [f"short-ship:{other}"]


def test_the_cancels_full_refund_failing_still_parks_the_order() -> None:
    order = confirmed()
    assert order.payment_id is not None
    run(order, order.request_cancel("changed my mind", "customer"))
    order.fulfilment_cancel_pending = False
    failure = refused(order, 2000)
    [attention] = run(order, order.on_payment_refund_failed(failure)).events
    assert status(order) is OrderStatus.NEEDS_ATTENTION
    assert order.attention_step is Step.REFUND_PAYMENT
    assert attention.order_id == order.order_id
