"""Which customer messages an event calls for, and what goes into them. Pure: no I/O.

- Every message kind below is sent by email; by SMS when the customer's preferences say so (by default
  only the kinds where a text message helps: payment failed, shipped, out for delivery, delivered,
  delivery failed) and the order has a phone number.
- At most one message per (causing event, channel), and per (order, dedupe key, channel): the same
  fact arriving again under a new event id sends nothing. Shipments are once per parcel (a split order
  ships in several) and refunds once per refund.
- Every refund the saga records is told as "refund issued", saying why: the order was cancelled
  (`OrderPaymentRefunded`), items were returned (`OrderReturnRefunded`) or could not be shipped
  (`OrderShortShipRefunded`), with the refunded items where the event names them.
- A delivery the carrier reports as failed (`ShipmentDeliveryFailed`) is told once per failed attempt;
  one reported out of order (after a later status) is not.
- Ids are derived from the causing event and the channel (uuid5), so every attempt to send one message
  carries the same notification id: the SMS provider's idempotency key and the email's Message-ID.
- The template inputs of an event (`event_context`) hold no personal data: they are stored with the
  delivery, and the contact's part (name, lines, totals) is added when the message is rendered.
"""

import re
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
    OrderPaymentDeclined,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderRejected,
    OrderReturnRefunded,
    OrderShipped,
    OrderShortShipRefunded,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentOutForDelivery,
)
from oms_events.values import Allocation
from oms_runtime.logging import mask_email

CHANNEL_EMAIL: Final = "email"
CHANNEL_SMS: Final = "sms"
CHANNELS: Final = (CHANNEL_EMAIL, CHANNEL_SMS)
DEFAULT_LOCALE: Final = "en"

# Fixed namespace of notification ids (uuid5): the same event and channel give the same id, forever.
_NOTIFICATION_NAMESPACE: Final = UUID("5c0f3d0e-6a1b-4f43-9a51-0d2f4c7e8b11")

# ISO 4217 currencies whose minor unit is not 1/100. Any other currency, known or not, has two decimals.
_ZERO_DECIMALS: Final = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DECIMALS: Final = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})

_WEEKDAYS: Final = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
}
_MONTHS: Final = {
    "en": (
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
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
}


class NotificationKind(StrEnum):
    ORDER_RECEIVED = "order_received"
    ORDER_CONFIRMATION = "order_confirmation"
    PAYMENT_FAILED = "payment_failed"
    ORDER_REJECTED = "order_rejected"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_SHIPPED = "order_shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    ORDER_REFUNDED = "order_refunded"
    DELIVERY_FAILED = "delivery_failed"


SMS_BY_DEFAULT: Final = frozenset(
    {
        NotificationKind.PAYMENT_FAILED,
        NotificationKind.ORDER_SHIPPED,
        NotificationKind.OUT_FOR_DELIVERY,
        NotificationKind.DELIVERED,
        NotificationKind.DELIVERY_FAILED,
    }
)
"""Kinds a customer gets by SMS without having chosen (when the order has a phone number). Email: all."""

NotifyingEvent = (
    OrderPlaced
    | OrderConfirmed
    | OrderPaymentDeclined
    | OrderShipped
    | OrderRejected
    | OrderCancelled
    | OrderPaymentRefunded
    | OrderReturnRefunded
    | OrderShortShipRefunded
    | ShipmentOutForDelivery
    | ShipmentDelivered
    | ShipmentDeliveryFailed
)
"""The events that send a message to the customer."""


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


# ---------------------------------------------------------------- addresses


def mask_recipient(email: str) -> str:
    """`jane.doe@example.com` -> `j***@example.com`, also for addresses the log masker's pattern misses."""
    masked = mask_email(email)
    local, _, domain = email.rpartition("@")
    expected = f"{local[:1]}***@{domain}"
    return masked if masked == expected else expected


_E164: Final = re.compile(r"^\+[1-9]\d{7,14}$")


def normalise_phone(phone: str) -> str | None:
    """`+49 30 1234567` -> `+49301234567` (E.164); None when it is not an international number.

    A number without its country code cannot be sent to safely (whose country?), so it is refused
    rather than guessed."""
    compact = re.sub(r"[ ()\-]", "", phone)
    return compact if _E164.match(compact) else None


def mask_phone(phone: str) -> str:
    """`+49 30 1234567` -> `+49******67`: the country code and the last two digits."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 6:
        return "***"
    prefix = "+" + digits[:2] if phone.strip().startswith("+") else ""
    hidden = len(digits) - (2 if prefix else 0) - 2
    return f"{prefix}{'*' * hidden}{digits[-2:]}"


# ---------------------------------------------------------------- formatting


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


def format_date(value: date | str, locale: str = DEFAULT_LOCALE) -> str:
    """`2025-03-14` -> `Friday, 14 March 2025` (en) or `Freitag, 14. März 2025` (de), whatever the
    process locale. Another language gets English names."""
    day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    language = locale.split("-")[0].split("_")[0]
    weekdays, months = _WEEKDAYS.get(language, _WEEKDAYS["en"]), _MONTHS.get(language, _MONTHS["en"])
    if language == "de":
        return f"{weekdays[day.weekday()]}, {day.day}. {months[day.month - 1]} {day.year}"
    return f"{weekdays[day.weekday()]}, {day.day} {months[day.month - 1]} {day.year}"


def safe_link(url: str) -> str | None:
    """The URL when it is a plain http(s) link a customer may click, else None (shown as text only)."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in url.strip()):
        return url.strip()
    return None


# ---------------------------------------------------------------- ids and keys


def notification_id_for(source_event_id: UUID, channel: str) -> UUID:
    return uuid5(_NOTIFICATION_NAMESPACE, f"{source_event_id}:{channel}")


def message_id_for(source_event_id: UUID, channel: str, domain: str) -> str:
    """The `Message-ID` header: the same for every attempt to send the message of one event."""
    return f"<{notification_id_for(source_event_id, channel)}@{domain}>"


def kind_for(event: NotifyingEvent) -> NotificationKind:
    match event:
        case OrderPlaced():
            return NotificationKind.ORDER_RECEIVED
        case OrderConfirmed():
            return NotificationKind.ORDER_CONFIRMATION
        case OrderPaymentDeclined():
            return NotificationKind.PAYMENT_FAILED
        case OrderShipped():
            return NotificationKind.ORDER_SHIPPED
        case OrderRejected():
            return NotificationKind.ORDER_REJECTED
        case OrderCancelled():
            return NotificationKind.ORDER_CANCELLED
        case OrderPaymentRefunded() | OrderReturnRefunded() | OrderShortShipRefunded():
            return NotificationKind.ORDER_REFUNDED
        case ShipmentOutForDelivery():
            return NotificationKind.OUT_FOR_DELIVERY
        case ShipmentDelivered():
            return NotificationKind.DELIVERED
        case ShipmentDeliveryFailed():
            return NotificationKind.DELIVERY_FAILED


def dedupe_key(event: NotifyingEvent) -> str:
    """At most one message per order for each key (per channel).

    An order rejected because its payment was declined already had its "payment failed" message, which
    says the order cannot go on: the rejection shares its key, so the customer is not told twice."""
    kind = kind_for(event).value
    match event:
        case OrderRejected() if event.reason_code == "payment_declined":
            return NotificationKind.PAYMENT_FAILED.value
        case OrderShipped() | ShipmentOutForDelivery() | ShipmentDelivered():
            return f"{kind}:{event.shipment_id}"
        case OrderPaymentRefunded() | OrderReturnRefunded() | OrderShortShipRefunded():
            return f"{kind}:{event.refund_id}"
        case ShipmentDeliveryFailed():
            # The carrier may try again and fail again: each failed attempt is news.
            return f"{kind}:{event.shipment_id}:{event.reported_at.isoformat()}"
        case _:
            return kind


def event_context(event: NotifyingEvent) -> dict[str, Any]:
    """The event's part of the template inputs, JSON-ready; never personal data (it is stored)."""
    match event:
        case OrderPlaced():
            return {"delivery_method": event.delivery_method.value}
        case OrderConfirmed():
            return {"amount_charged": format_money(event.amount_minor, event.currency)}
        case OrderPaymentDeclined():
            return {"reason": event.reason, "reason_code": event.reason_code}
        case OrderShipped():
            return {
                "carrier": event.carrier,
                "tracking_number": event.tracking_number,
                "tracking_url": event.tracking_url,
                "tracking_link": safe_link(event.tracking_url),
                "estimated_delivery": format_date(event.estimated_delivery),
                "estimated_delivery_date": event.estimated_delivery.isoformat(),
                "shipment_ref": event.shipment_id.hex[:8].upper(),
            }
        case OrderRejected():
            return {"reason": event.reason, "reason_code": event.reason_code}
        case OrderCancelled():
            # Fixed wording for the customer: the canceller's note is internal.
            return {"reason": event.customer_message, "reason_code": event.reason_code}
        case OrderPaymentRefunded() | OrderReturnRefunded() | OrderShortShipRefunded():
            reason = {
                OrderPaymentRefunded: "cancelled",
                OrderReturnRefunded: "returned",
                OrderShortShipRefunded: "not_shipped",
            }
            lines: list[Allocation] = [] if isinstance(event, OrderPaymentRefunded) else event.lines
            return {
                "amount_refunded": format_money(event.amount_minor, event.currency),
                "refund_ref": event.refund_id.hex[:8].upper(),
                "refund_reason": reason[type(event)],
                "refunded_items": _items(lines),
            }
        case ShipmentDeliveryFailed():
            return {
                "carrier": event.carrier,
                "tracking_number": event.tracking_number,
                "location": event.location,
                "reported_date": event.reported_at.date().isoformat(),
                "shipment_ref": event.shipment_id.hex[:8].upper(),
                "reason": event.reason,
            }
        case ShipmentOutForDelivery() | ShipmentDelivered():
            return {
                "carrier": event.carrier,
                "tracking_number": event.tracking_number,
                "location": event.location,
                "reported_date": event.reported_at.date().isoformat(),
                "shipment_ref": event.shipment_id.hex[:8].upper(),
            }


def _items(lines: list[Allocation]) -> list[dict[str, Any]]:
    """Units per sku (one sku may come from several warehouses; the customer does not care which)."""
    units: dict[str, int] = {}
    for line in lines:
        units[line.sku] = units.get(line.sku, 0) + line.quantity
    return [{"sku": sku, "quantity": quantity} for sku, quantity in units.items()]


def order_context(contact: OrderContact) -> dict[str, Any]:
    """The contact's part of the template inputs (read when the message is rendered)."""
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


def template_context(contact: OrderContact, stored_event_context: Mapping[str, Any]) -> dict[str, Any]:
    return {**order_context(contact), **stored_event_context}
