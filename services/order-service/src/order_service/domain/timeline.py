"""Plain-words descriptions of an order's events, for its timeline."""

from oms_events.messages import (
    Message,
    OrderBackordered,
    OrderCancellationRefused,
    OrderCancellationRequested,
    OrderCancelled,
    OrderConfirmed,
    OrderFulfilmentCancelled,
    OrderFulfilmentFailed,
    OrderHoldReleased,
    OrderNeedsAttention,
    OrderOperatorActionTaken,
    OrderPaymentCaptured,
    OrderPaymentDeclined,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderPutOnHold,
    OrderRefundActionTaken,
    OrderRefundFailed,
    OrderRejected,
    OrderReservationExpired,
    OrderReturnCompleted,
    OrderReturnInspected,
    OrderReturnRefunded,
    OrderReturnRequested,
    OrderReturnRestocked,
    OrderReturnUpdated,
    OrderShipmentUpdated,
    OrderShipped,
    OrderShortShipped,
    OrderShortShipRefunded,
    OrderStepTimedOut,
    OrderStockReleased,
    OrderStockReserved,
)


def describe(event: Message) -> str:
    match event:
        case OrderPlaced():
            units = sum(line.quantity for line in event.lines)
            return f"Order placed via {event.channel.value}: {units} item(s), {event.total_minor} {event.currency} (minor units)"
        case OrderStockReserved():
            warehouses = sorted({a.warehouse_id for a in event.allocations})
            return f"Stock reserved in {', '.join(warehouses)}"
        case OrderConfirmed():
            return f"Payment of {event.amount_minor} {event.currency} (minor units) captured; order confirmed"
        case OrderPaymentDeclined():
            return f"Payment declined ({event.reason_code})"
        case OrderStockReleased():
            return "Reserved stock released"
        case OrderShipped():
            return f"Shipped from {event.warehouse_id} with {event.carrier}, tracking {event.tracking_number}, expected {event.estimated_delivery.isoformat()}"
        case OrderRejected():
            return f"Order rejected: {event.reason}"
        case OrderCancellationRequested():
            return f"Cancellation requested by {event.requested_by}: {event.reason}"
        case OrderPaymentCaptured():
            return f"Payment of {event.amount_minor} {event.currency} (minor units) captured during the cancel; to be refunded"
        case OrderPaymentRefunded():
            return f"Refunded {event.amount_minor} {event.currency} (minor units)"
        case OrderCancelled():
            return f"Order cancelled ({event.reason_code}): {event.note}"
        case OrderStepTimedOut():
            return f"No reply to {event.step} after {event.attempts} attempts"
        case OrderNeedsAttention():
            return f"Needs an operator ({event.step}): {event.reason}"
        case OrderOperatorActionTaken():
            return f"Operator {event.operator} chose {event.action}: {event.note}"
        case OrderPutOnHold():
            return f"Put on hold by {event.held_by}: {event.reason}"
        case OrderBackordered():
            short = ", ".join(f"{s.sku} ({s.requested - s.available} short)" for s in event.shortages)
            return f"Backordered: waiting for stock of {short}"
        case OrderReservationExpired():
            return "The stock reservation expired before the order was paid"
        case OrderHoldReleased():
            return f"Hold released by {event.released_by}: {event.note}"
        case OrderShipmentUpdated():
            where = f" at {event.location}" if event.location else ""
            note = f" ({event.note})" if event.note else ""
            return f"Shipment from {event.warehouse_id}: {event.status.replace('_', ' ')}{where}{note}"
        case OrderFulfilmentFailed():
            return f"Fulfilment failed in {event.warehouse_id or 'a warehouse'} ({event.reason_code}): {event.reason}"
        case OrderFulfilmentCancelled():
            return f"Fulfilment stopped: {len(event.shipment_ids)} shipment(s) cancelled before leaving"
        case OrderReturnRequested():
            units = sum(line.quantity for line in event.lines)
            return f"Return of {units} unit(s) requested by {event.requested_by}: {event.reason}"
        case OrderReturnUpdated():
            return f"Return {event.status}"
        case OrderReturnInspected():
            sellable = sum(line.quantity for line in event.sellable)
            unsellable = sum(line.quantity for line in event.unsellable)
            return f"Return inspected: {sellable} unit(s) to restock, {unsellable} not sellable; refund {event.refund_minor} {event.currency} (minor units)"
        case OrderReturnRefunded():
            return f"Return refunded: {event.amount_minor} {event.currency} (minor units)"
        case OrderReturnRestocked():
            return f"Returned units back on hand: {sum(line.quantity for line in event.lines)}"
        case OrderReturnCompleted():
            return "Return completed"
        case OrderShortShipped():
            missing = ", ".join(f"{line.quantity} x {line.sku}" for line in event.short)
            return f"Not shipped from {event.warehouse_id}: {missing}; {event.refund_minor} {event.currency} (minor units) to refund"
        case OrderShortShipRefunded():
            return f"Refunded {event.amount_minor} {event.currency} (minor units) for units not shipped"
        case OrderRefundFailed():
            return f"Refund of {event.amount_minor} {event.currency} (minor units) failed ({event.reason_code}): {event.reason}; {event.refund} waits for an operator"
        case OrderRefundActionTaken():
            return f"Operator {event.operator} chose {event.action} for refund {event.refund}: {event.note}"
        case OrderCancellationRefused():
            return f"Cancellation refused: {event.reason}"
        case _:
            return type(event).__name__
