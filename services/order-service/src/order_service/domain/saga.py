"""The saga's timing rules: which reply each command waits for, and what to do when none comes."""

from oms_events.messages import (
    AuthoriseReturn,
    CancelShipment,
    CapturePayment,
    Command,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    RestockItems,
    ShipOrder,
)

_AWAITED = {
    ReserveStock: "StockReserved|StockReservationFailed",
    CapturePayment: "PaymentCaptured|PaymentDeclined|PaymentReviewRequired",
    ReleaseStock: "StockReleased",
    # Fulfilment answers at once that it took the order (ShipmentCreated); in manual mode the shipping
    # itself waits for warehouse staff, with no deadline.
    ShipOrder: "ShipmentCreated|Shipped|FulfilmentFailed",
    CancelShipment: "FulfilmentCancelled|ShipmentCancellationRefused",
    AuthoriseReturn: "ReturnAuthorised",
    RestockItems: "ItemsRestocked",
    RefundPayment: "PaymentRefunded|PaymentRefundFailed",
}


def awaited_reply(command: Command) -> str:
    return _AWAITED[type(command)]


def next_deadline_s(step_timeout_s: float, attempts: int) -> float:
    """Each re-send waits longer than the one before (linear backoff keeps the worst case bounded)."""
    return step_timeout_s * (attempts + 1)
