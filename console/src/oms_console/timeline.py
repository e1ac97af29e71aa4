"""An order's timeline as the console draws it: each entry's kind, and the saga command a reply answers.

The order view's timeline lists the order's events; a saga step is a command sent and the event its
reply became, so the console names both (ReserveStock -> StockReserved), and ends with the step the
saga waits on now, with its deadline and sends (order-service's `GET /orders/{id}/saga`).
"""

from dataclasses import dataclass
from typing import Any

# event -> (kind, saga command it answers or starts, if any)
EVENT_KINDS: dict[str, tuple[str, str | None]] = {
    "OrderPlaced": ("start", "ReserveStock"),
    "OrderStockReserved": ("reply", "ReserveStock"),
    "OrderBackordered": ("reply", "ReserveStock"),
    "OrderConfirmed": ("reply", "CapturePayment"),
    "OrderPaymentCaptured": ("reply", "CapturePayment"),
    "OrderPaymentDeclined": ("reply", "CapturePayment"),
    "OrderShipped": ("reply", "ShipOrder"),
    "OrderShipmentUpdated": ("reply", "ShipOrder"),
    "OrderShortShipped": ("reply", "ShipOrder"),
    "OrderFulfilmentFailed": ("reply", "ShipOrder"),
    "OrderStockReleased": ("compensation", "ReleaseStock"),
    "OrderPaymentRefunded": ("compensation", "RefundPayment"),
    "OrderFulfilmentCancelled": ("compensation", "CancelShipment"),
    "OrderCancellationRefused": ("reply", "CancelShipment"),
    "OrderShortShipRefunded": ("compensation", "RefundPayment"),
    "OrderRefundFailed": ("attention", "RefundPayment"),
    "OrderStepTimedOut": ("deadline", None),
    "OrderNeedsAttention": ("attention", None),
    "OrderOperatorActionTaken": ("operator", None),
    "OrderRefundActionTaken": ("operator", None),
    "OrderHoldReleased": ("operator", "CapturePayment"),
    "OrderPutOnHold": ("hold", None),
    "OrderCancellationRequested": ("operator", None),
    "OrderReservationExpired": ("deadline", None),
    "OrderCancelled": ("end", None),
    "OrderRejected": ("end", None),
    "OrderReturnRequested": ("return", "AuthoriseReturn"),
    "OrderReturnUpdated": ("return", None),
    "OrderReturnInspected": ("return", None),
    "OrderReturnRefunded": ("return", "RefundPayment"),
    "OrderReturnRestocked": ("return", "RestockItems"),
    "OrderReturnCompleted": ("return", None),
}
KIND_LABELS = {
    "start": "order",
    "reply": "step",
    "compensation": "compensation",
    "deadline": "deadline",
    "attention": "needs attention",
    "operator": "operator action",
    "hold": "hold",
    "end": "closed",
    "return": "return",
    "pending": "waiting",
    "event": "event",
}


@dataclass(frozen=True)
class TimelineItem:
    at: str
    event: str
    description: str
    kind: str
    command: str | None
    deadline: str | None = None
    attempts: int | None = None

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


def timeline(order: dict[str, Any], saga: dict[str, Any] | None = None) -> list[TimelineItem]:
    """The order's entries, oldest first, then the step its saga waits on (`GET /orders/{id}/saga`): the
    command sent, how many times, and its deadline."""
    items = []
    for entry in order.get("timeline", []):
        kind, command = EVENT_KINDS.get(entry["event"], ("event", None))
        items.append(
            TimelineItem(
                at=entry["at"],
                event=entry["event"],
                description=entry.get("description", ""),
                kind=kind,
                command=command,
            )
        )
    pending = (saga or {}).get("pending_step")
    if pending:
        parked = pending.get("state") == "parked"
        items.append(
            TimelineItem(
                at=pending.get("updated_at") or "",
                event=f"awaiting {pending['awaiting']}",
                description=(
                    f"Parked: {pending['command']} got no usable answer; an operator acts."
                    if parked
                    else f"Waiting for the answer to {pending['command']}."
                ),
                kind="attention" if parked else "pending",
                command=pending["command"],
                deadline=None if parked else pending.get("deadline_at"),
                attempts=pending.get("attempts"),
            )
        )
    return items
