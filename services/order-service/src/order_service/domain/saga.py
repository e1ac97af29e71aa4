"""The saga's timing rules: which reply each command waits for, and what to do when none comes."""

from oms_events.messages import CapturePayment, Command, RefundPayment, ReleaseStock, ReserveStock, ShipOrder

_AWAITED = {
    ReserveStock: "StockReserved|StockReservationFailed",
    CapturePayment: "PaymentCaptured|PaymentDeclined|PaymentReviewRequired",
    ReleaseStock: "StockReleased",
    ShipOrder: "Shipped",
    RefundPayment: "PaymentRefunded|PaymentRefundFailed",
}


def awaited_reply(command: Command) -> str:
    return _AWAITED[type(command)]


def next_deadline_s(step_timeout_s: float, attempts: int) -> float:
    """Each re-send waits longer than the one before (linear backoff keeps the worst case bounded)."""
    return step_timeout_s * (attempts + 1)
