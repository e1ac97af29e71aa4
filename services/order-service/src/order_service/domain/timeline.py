"""Plain-words descriptions of an order's events, for its timeline."""

from oms_events.messages import (
    Message,
    OrderConfirmed,
    OrderPaymentDeclined,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
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
        case _:
            return type(event).__name__
