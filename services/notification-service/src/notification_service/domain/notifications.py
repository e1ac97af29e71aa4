"""Which customer message an order event calls for, and what goes into it. Pure: no I/O.

- `OrderPlaced` sends nothing (the sales channel acknowledged the order); its contact and summary
  are remembered, because the later events of the order do not carry them.
- `OrderConfirmed` -> an order confirmation, `OrderShipped` -> a shipping notice, `OrderRejected`
  -> a "we could not complete your order" message, `OrderCancelled` -> an "order cancelled" message,
  `OrderPaymentRefunded` -> a "refund issued" message with the amount refunded.
- At most one message per (causing event, channel), and per (order, kind, channel): a second
  `OrderConfirmed` of the same order sends nothing. Shipments are the exception on purpose: a split
  order ships in several parcels, and each parcel (shipment id) gets its own message, once; and so
  does each refund (refund id).
- Ids are derived from the causing event, so that a redelivered event yields the same notification
  id and the same `Message-ID` header, and a receiving side can drop a duplicate.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID, uuid5

from oms_events.messages import (
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from oms_runtime.logging import mask_email

CHANNEL_EMAIL: Final = "email"
DEFAULT_LOCALE: Final = "en"

# Fixed namespace of notification ids (uuid5): the same event and channel give the same id, forever.
_NOTIFICATION_NAMESPACE: Final = UUID("5c0f3d0e-6a1b-4f43-9a51-0d2f4c7e8b11")

# ISO 4217 currencies whose minor unit is not 1/100. Any other currency, known or not, has two decimals.
_ZERO_DECIMALS: Final = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DECIMALS: Final = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})

_WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class NotificationKind(StrEnum):
    ORDER_CONFIRMATION = "order_confirmation"
    ORDER_SHIPPED = "order_shipped"
    ORDER_REJECTED = "order_rejected"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REFUNDED = "order_refunded"


NotifyingEvent = OrderConfirmed | OrderShipped | OrderRejected | OrderCancelled | OrderPaymentRefunded
"""The order events that send a message to the customer."""


@dataclass(frozen=True)
class LineSummary:
    sku: str
    quantity: int
    unit_price_minor: int

    @property
    def total_minor(self) -> int:
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True)
class OrderContact:
    """Who to tell about an order, and what they ordered; taken from `OrderPlaced`."""

    order_id: UUID
    customer_id: str
    name: str
    email: str
    phone: str | None
    locale: str
    currency: str
    total_minor: int
    external_reference: str
    lines: tuple[LineSummary, ...]


@dataclass(frozen=True)
class EmailPlan:
    """Everything needed to render and send one email, decided before any I/O."""

    kind: NotificationKind
    order_id: UUID
    source_event_id: UUID
    notification_id: UUID
    dedupe_key: str
    locale: str
    recipient: str
    recipient_name: str
    message_id: str
    context: Mapping[str, Any]
    channel: str = CHANNEL_EMAIL

    @property
    def recipient_masked(self) -> str:
        return mask_recipient(self.recipient)


def contact_from_order_placed(event: OrderPlaced, locale: str = DEFAULT_LOCALE) -> OrderContact:
    return OrderContact(
        order_id=event.order_id,
        customer_id=event.customer.customer_id,
        name=event.customer.name,
        email=event.customer.email,
        phone=event.customer.phone,
        locale=locale,
        currency=event.currency,
        total_minor=event.total_minor,
        external_reference=event.external_reference,
        lines=tuple(LineSummary(line.sku, line.quantity, line.unit_price_minor) for line in event.lines),
    )


def mask_recipient(email: str) -> str:
    """`jane.doe@example.com` -> `j***@example.com`, also for addresses the log masker's pattern misses."""
    masked = mask_email(email)
    local, _, domain = email.rpartition("@")
    expected = f"{local[:1]}***@{domain}"
    return masked if masked == expected else expected


def short_order_id(order_id: UUID) -> str:
    """What a customer reads and quotes: the first 8 hex digits of the order id, upper case."""
    return order_id.hex[:8].upper()


def minor_unit_digits(currency: str) -> int:
    """Decimals of the currency's minor unit: 0 (JPY, KRW, ...), 3 (KWD, BHD, ...), otherwise 2."""
    if currency in _ZERO_DECIMALS:
        return 0
    if currency in _THREE_DECIMALS:
        return 3
    return 2


def format_money(amount_minor: int, currency: str) -> str:
    """`(123450, "EUR")` -> `EUR 1,234.50`; `(1500, "JPY")` -> `JPY 1,500`."""
    digits = minor_unit_digits(currency)
    whole, fraction = divmod(amount_minor, 10**digits)
    return f"{currency} {whole:,}" + (f".{fraction:0{digits}d}" if digits else "")


def format_date(value: date) -> str:
    """`2025-03-14` -> `Friday, 14 March 2025` (English names, whatever the process locale)."""
    return f"{_WEEKDAYS[value.weekday()]}, {value.day} {_MONTHS[value.month - 1]} {value.year}"


def safe_link(url: str) -> str | None:
    """The URL when it is a plain http(s) link a customer may click, else None (shown as text only)."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in url.strip()):
        return url.strip()
    return None


def notification_id_for(source_event_id: UUID, channel: str) -> UUID:
    return uuid5(_NOTIFICATION_NAMESPACE, f"{source_event_id}:{channel}")


def message_id_for(source_event_id: UUID, channel: str, domain: str) -> str:
    """The `Message-ID` header: the same for every attempt to send the message of one event."""
    return f"<{notification_id_for(source_event_id, channel)}@{domain}>"


def dedupe_key(event: NotifyingEvent) -> str:
    """At most one message per order for each key (per channel)."""
    match event:
        case OrderConfirmed():
            return NotificationKind.ORDER_CONFIRMATION.value
        case OrderShipped():
            return f"{NotificationKind.ORDER_SHIPPED.value}:{event.shipment_id}"
        case OrderRejected():
            return NotificationKind.ORDER_REJECTED.value
        case OrderCancelled():
            return NotificationKind.ORDER_CANCELLED.value
        case OrderPaymentRefunded():
            return f"{NotificationKind.ORDER_REFUNDED.value}:{event.refund_id}"


def kind_for(event: NotifyingEvent) -> NotificationKind:
    match event:
        case OrderConfirmed():
            return NotificationKind.ORDER_CONFIRMATION
        case OrderShipped():
            return NotificationKind.ORDER_SHIPPED
        case OrderRejected():
            return NotificationKind.ORDER_REJECTED
        case OrderCancelled():
            return NotificationKind.ORDER_CANCELLED
        case OrderPaymentRefunded():
            return NotificationKind.ORDER_REFUNDED


def _order_context(contact: OrderContact) -> dict[str, Any]:
    return {
        "customer_name": contact.name,
        "order_ref": short_order_id(contact.order_id),
        "order_id": str(contact.order_id),
        "external_reference": contact.external_reference,
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": format_money(line.unit_price_minor, contact.currency),
                "line_total": format_money(line.total_minor, contact.currency),
            }
            for line in contact.lines
        ],
        "item_count": sum(line.quantity for line in contact.lines),
        "total": format_money(contact.total_minor, contact.currency),
    }


def _event_context(event: NotifyingEvent) -> dict[str, Any]:
    match event:
        case OrderConfirmed():
            return {"amount_charged": format_money(event.amount_minor, event.currency)}
        case OrderShipped():
            return {
                "carrier": event.carrier,
                "tracking_number": event.tracking_number,
                "tracking_url": event.tracking_url,
                "tracking_link": safe_link(event.tracking_url),
                "estimated_delivery": format_date(event.estimated_delivery),
                "shipment_ref": event.shipment_id.hex[:8].upper(),
            }
        case OrderRejected():
            return {"reason": event.reason, "reason_code": event.reason_code}
        case OrderCancelled():
            # Fixed wording for the customer: the canceller's note is internal.
            return {"reason": event.customer_message}
        case OrderPaymentRefunded():
            return {
                "amount_refunded": format_money(event.amount_minor, event.currency),
                "refund_ref": event.refund_id.hex[:8].upper(),
            }


def plan_email(
    event: NotifyingEvent, contact: OrderContact, *, source_event_id: UUID, message_id_domain: str
) -> EmailPlan:
    """The email an order event calls for, addressed to the order's contact."""
    if contact.order_id != event.order_id:
        raise ValueError(f"contact of order {contact.order_id} used for an event of order {event.order_id}")
    return EmailPlan(
        kind=kind_for(event),
        order_id=event.order_id,
        source_event_id=source_event_id,
        notification_id=notification_id_for(source_event_id, CHANNEL_EMAIL),
        dedupe_key=dedupe_key(event),
        locale=contact.locale,
        recipient=contact.email,
        recipient_name=contact.name,
        message_id=message_id_for(source_event_id, CHANNEL_EMAIL, message_id_domain),
        context={**_order_context(contact), **_event_context(event)},
    )
