"""An order's timeline as the console draws it: each entry's kind, and the saga command a reply answers.

The order view's timeline lists the order's events; a saga step is a command sent and the event its
reply became, so the console names both (ReserveStock -> StockReserved). Entries the API already
classifies (`kind`, `command`, when given) keep the API's word.
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


def timeline(order: dict[str, Any]) -> list[TimelineItem]:
    """The order's entries, oldest first, then the step it waits on (with its deadline), if the API says."""
    items = []
    for entry in order.get("timeline", []):
        kind, command = EVENT_KINDS.get(entry["event"], ("event", None))
        items.append(
            TimelineItem(
                at=entry["at"],
                event=entry["event"],
                description=entry.get("description", ""),
                kind=entry.get("kind") or kind,
                command=entry.get("command") or command,
                attempts=entry.get("attempt"),
            )
        )
    pending = order.get("pending_step")
    if pending:
        items.append(
            TimelineItem(
                at=pending.get("sent_at") or "",
                event=pending.get("step", "waiting"),
                description=f"Waiting for the answer to {pending.get('command')}",
                kind="pending",
                command=pending.get("command"),
                deadline=pending.get("deadline"),
                attempts=pending.get("attempts"),
            )
        )
    return items
