"""Upcasters: read an older schema version of a message as the current one.

Key: (message type, version it reads). Each returns the payload of the next version. Stored events
keep their original form; they are upcast every time they are read.
"""

from typing import Any

from oms_events.registry import Upcaster


def order_cancelled_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1's free-text `reason` becomes the internal `note`; the customer gets neutral wording."""
    upcast = {k: v for k, v in payload.items() if k != "reason"}
    upcast["reason_code"] = "unspecified"
    upcast["customer_message"] = "Your order has been cancelled."
    upcast["note"] = payload.get("reason", "")
    return upcast


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("OrderCancelled", 1): order_cancelled_v1_to_v2,
}
