"""Domain decisions of notification-service: which message, to whom, with which ids and values."""

from datetime import date
from uuid import UUID, uuid4

import pytest

from notification_service.domain.notifications import (
    CHANNEL_EMAIL,
    NotificationKind,
    contact_from_order_placed,
    dedupe_key,
    format_date,
    format_money,
    kind_for,
    mask_recipient,
    message_id_for,
    notification_id_for,
    plan_email,
    safe_link,
    short_order_id,
)
from oms_events.messages import (
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from oms_runtime.logging import mask_email


def test_contact_keeps_what_later_emails_need(placed: OrderPlaced) -> None:
    contact = contact_from_order_placed(placed)
    assert contact.order_id == placed.order_id
    assert (contact.name, contact.email, contact.phone) == ("Jane Doe", "jane.doe@example.com", "+49 30 1234567")
    assert (contact.currency, contact.total_minor, contact.external_reference) == ("EUR", 5230, "WEB-100234")
    assert [(ln.sku, ln.quantity, ln.total_minor) for ln in contact.lines] == [
        ("SKU-TSHIRT-RED-M", 2, 3980),
        ("SKU-MUG-BLUE", 1, 1250),
    ]
    assert contact.locale == "en"


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("jane.doe@example.com", "j***@example.com"),
        ("x@mail.example.org", "x***@mail.example.org"),
        ("a@b.c", "a***@b.c"),  # one-letter TLD: the log masker's pattern misses it, this does not
        ("jane!doe@example.com", "j***@example.com"),
    ],
)
def test_mask_recipient_never_shows_the_local_part(address: str, masked: str) -> None:
    assert mask_recipient(address) == masked


def test_mask_recipient_agrees_with_the_log_masker() -> None:
    assert mask_recipient("jane.doe@example.com") == mask_email("jane.doe@example.com")


def test_short_order_id_is_the_first_eight_hex_digits() -> None:
    assert short_order_id(UUID("3f2a9c1e-0000-4000-8000-000000000000")) == "3F2A9C1E"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (5230, "EUR", "EUR 52.30"),
        (123456789, "USD", "USD 1,234,567.89"),
        (5, "GBP", "GBP 0.05"),
        (0, "EUR", "EUR 0.00"),
        (1500, "JPY", "JPY 1,500"),
        (12345, "KWD", "KWD 12.345"),
        (2500, "EUR", "EUR 25.00"),
        (2500, "XYZ", "XYZ 25.00"),  # a currency not in the tables: two decimals
        (2500, "KRW", "KRW 2,500"),
    ],
)
def test_format_money_uses_the_currency_minor_unit(amount: int, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text


def test_format_date_in_english() -> None:
    assert format_date(date(2025, 3, 14)) == "Friday, 14 March 2025"
    assert format_date(date(2024, 12, 1)) == "Sunday, 1 December 2024"


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://tracking.example/t?id=1", "https://tracking.example/t?id=1"),
        ("http://carrier.example/JJD1", "http://carrier.example/JJD1"),
        ("javascript:alert(1)", None),
        ("data:text/html,<b>x</b>", None),
        ("https://", None),
        ("https://a.example/x y", None),
        ("tracking.example/123", None),
    ],
)
def test_only_plain_http_links_are_clickable(url: str, link: str | None) -> None:
    assert safe_link(url) == link


def test_ids_are_derived_from_the_causing_event() -> None:
    event_id = uuid4()
    assert notification_id_for(event_id, CHANNEL_EMAIL) == notification_id_for(event_id, CHANNEL_EMAIL)
    assert notification_id_for(event_id, CHANNEL_EMAIL) != notification_id_for(event_id, "sms")
    assert notification_id_for(event_id, CHANNEL_EMAIL) != notification_id_for(uuid4(), CHANNEL_EMAIL)
    message_id = message_id_for(event_id, CHANNEL_EMAIL, "oms.example")
    assert message_id == f"<{notification_id_for(event_id, CHANNEL_EMAIL)}@oms.example>"
    assert message_id == message_id_for(event_id, CHANNEL_EMAIL, "oms.example")


def test_kinds_and_dedupe_keys(
    confirmed: OrderConfirmed,
    shipped: OrderShipped,
    rejected: OrderRejected,
    cancelled: OrderCancelled,
    refunded: OrderPaymentRefunded,
    placed: OrderPlaced,
) -> None:
    assert kind_for(confirmed) is NotificationKind.ORDER_CONFIRMATION
    assert kind_for(shipped) is NotificationKind.ORDER_SHIPPED
    assert kind_for(rejected) is NotificationKind.ORDER_REJECTED
    # Once per order for confirmation and rejection, whatever the event id ...
    assert dedupe_key(confirmed) == dedupe_key(confirmed.model_copy(update={"payment_id": uuid4()}))
    assert dedupe_key(rejected) == "order_rejected"
    # ... but once per parcel for shipments: a split order ships twice.
    second_parcel = shipped.model_copy(update={"shipment_id": uuid4(), "warehouse_id": "WH-LON"})
    assert dedupe_key(shipped) != dedupe_key(second_parcel)
    assert dedupe_key(shipped) == f"order_shipped:{shipped.shipment_id}"
    # A cancellation once per order; a refund once per refund id.
    assert kind_for(cancelled) is NotificationKind.ORDER_CANCELLED
    assert dedupe_key(cancelled) == dedupe_key(cancelled.model_copy(update={"reason": "other words"}))
    assert dedupe_key(cancelled) == "order_cancelled"
    assert kind_for(refunded) is NotificationKind.ORDER_REFUNDED
    assert dedupe_key(refunded) == f"order_refunded:{refunded.refund_id}"


def test_plan_confirmation(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    event_id = uuid4()
    plan = plan_email(
        confirmed, contact_from_order_placed(placed), source_event_id=event_id, message_id_domain="oms.example"
    )
    assert plan.kind is NotificationKind.ORDER_CONFIRMATION
    assert plan.channel == "email"
    assert (plan.recipient, plan.recipient_name, plan.recipient_masked) == (
        "jane.doe@example.com",
        "Jane Doe",
        "j***@example.com",
    )
    assert plan.notification_id == notification_id_for(event_id, "email")
    assert plan.message_id == message_id_for(event_id, "email", "oms.example")
    assert plan.context["order_ref"] == short_order_id(placed.order_id)
    assert plan.context["amount_charged"] == "EUR 52.30"
    assert plan.context["total"] == "EUR 52.30"
    assert plan.context["item_count"] == 3
    assert plan.context["lines"][0] == {
        "sku": "SKU-TSHIRT-RED-M",
        "quantity": 2,
        "unit_price": "EUR 19.90",
        "line_total": "EUR 39.80",
    }


def test_plan_shipped(placed: OrderPlaced, shipped: OrderShipped) -> None:
    plan = plan_email(shipped, contact_from_order_placed(placed), source_event_id=uuid4(), message_id_domain="x.test")
    assert plan.kind is NotificationKind.ORDER_SHIPPED
    assert plan.context["carrier"] == "DHL"
    assert plan.context["tracking_number"] == "JJD000390007713"
    assert plan.context["tracking_link"] == shipped.tracking_url
    assert plan.context["estimated_delivery"] == "Friday, 14 March 2025"
    assert plan.context["shipment_ref"] == shipped.shipment_id.hex[:8].upper()


def test_plan_rejected(placed: OrderPlaced, rejected: OrderRejected) -> None:
    plan = plan_email(rejected, contact_from_order_placed(placed), source_event_id=uuid4(), message_id_domain="x.test")
    assert plan.kind is NotificationKind.ORDER_REJECTED
    assert plan.context["reason"] == "We do not have enough SKU-LIMITED in stock right now."
    assert plan.context["reason_code"] == "out_of_stock"


def test_plan_cancelled(placed: OrderPlaced, cancelled: OrderCancelled) -> None:
    plan = plan_email(cancelled, contact_from_order_placed(placed), source_event_id=uuid4(), message_id_domain="x.test")
    assert plan.kind is NotificationKind.ORDER_CANCELLED
    assert plan.context["reason"] == "You asked us to cancel the order before it was shipped."
    assert plan.context["total"] == "EUR 52.30"


def test_plan_refunded(placed: OrderPlaced, refunded: OrderPaymentRefunded) -> None:
    plan = plan_email(refunded, contact_from_order_placed(placed), source_event_id=uuid4(), message_id_domain="x.test")
    assert plan.kind is NotificationKind.ORDER_REFUNDED
    assert plan.context["amount_refunded"] == "EUR 25.00"
    assert plan.context["refund_ref"] == refunded.refund_id.hex[:8].upper()
    yen = refunded.model_copy(update={"amount_minor": 1500, "currency": "JPY"})
    plan = plan_email(yen, contact_from_order_placed(placed), source_event_id=uuid4(), message_id_domain="x.test")
    assert plan.context["amount_refunded"] == "JPY 1,500"


def test_a_contact_is_never_used_for_another_order(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    other = confirmed.model_copy(update={"order_id": uuid4()})
    with pytest.raises(ValueError, match="used for an event of order"):
        plan_email(other, contact_from_order_placed(placed), source_event_id=uuid4(), message_id_domain="x.test")
