"""Every email template renders with realistic event data, in plain text and HTML, with fallback to `en`."""

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from jinja2 import UndefinedError

from notification_service.adapters.templates import (
    PARTS,
    TEMPLATES_DIR,
    RenderedEmail,
    TemplateRenderer,
    locale_candidates,
    one_line,
)
from notification_service.domain.notifications import (
    NotificationKind,
    NotifyingEvent,
    contact_from_order_placed,
    plan_email,
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


def render(event: NotifyingEvent, placed: OrderPlaced, locale: str = "en") -> RenderedEmail:
    contact = contact_from_order_placed(placed, locale=locale)
    plan = plan_email(event, contact, source_event_id=uuid4(), message_id_domain="oms.example")
    return TemplateRenderer().render(plan.kind, plan.locale, plan.context)


@pytest.mark.parametrize("kind", list(NotificationKind))
@pytest.mark.parametrize("part", PARTS)
def test_every_kind_has_every_part_in_english(kind: NotificationKind, part: str) -> None:
    assert (TEMPLATES_DIR / "en" / f"{kind.value}.{part}").is_file()


def assert_well_formed(email: RenderedEmail, placed: OrderPlaced) -> None:
    ref = short_order_id(placed.order_id)
    assert ref in email.subject
    assert "\n" not in email.subject
    assert email.subject == email.subject.strip()
    assert email.text.startswith("Hello Jane Doe,")
    assert ref in email.text
    assert email.html.startswith("<!DOCTYPE html>")
    assert "Hello Jane Doe," in email.html
    assert ref in email.html
    assert "{{" not in email.text + email.html
    assert "{%" not in email.text + email.html
    assert email.locale == "en"


def test_order_confirmation(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    email = render(confirmed, placed)
    assert_well_formed(email, placed)
    assert email.subject == f"Your order {short_order_id(placed.order_id)} is confirmed"
    assert "2 x SKU-TSHIRT-RED-M at EUR 19.90 = EUR 39.80" in email.text
    assert "1 x SKU-MUG-BLUE at EUR 12.50 = EUR 12.50" in email.text
    assert "Order total: EUR 52.30" in email.text
    assert "payment of EUR 52.30" in email.text
    assert "<td>SKU-TSHIRT-RED-M</td>" in email.html
    assert "<strong>EUR 52.30</strong>" in email.html
    assert "WEB-100234" in email.text


def test_order_shipped(placed: OrderPlaced, shipped: OrderShipped) -> None:
    email = render(shipped, placed)
    assert_well_formed(email, placed)
    assert email.subject == f"Your order {short_order_id(placed.order_id)} has shipped"
    assert "Carrier:            DHL" in email.text
    assert "Tracking number:    JJD000390007713" in email.text
    assert "Estimated delivery: Friday, 14 March 2025" in email.text
    assert "Track your parcel:  https://tracking.example/track?id=JJD000390007713&lang=en" in email.text
    # The & of the URL is escaped in the attribute, as HTML requires.
    assert 'href="https://tracking.example/track?id=JJD000390007713&amp;lang=en"' in email.html
    assert "Friday, 14 March 2025" in email.html


def test_order_shipped_with_an_unsafe_tracking_url_shows_no_link(placed: OrderPlaced, shipped: OrderShipped) -> None:
    email = render(shipped.model_copy(update={"tracking_url": "javascript:alert(document.cookie)"}), placed)
    assert "href=" not in email.html
    assert "javascript:" not in email.html
    assert "Track your parcel" not in email.text
    assert "JJD000390007713" in email.text  # the tracking number is still there to quote


def test_order_rejected(placed: OrderPlaced, rejected: OrderRejected) -> None:
    email = render(rejected, placed)
    assert_well_formed(email, placed)
    assert email.subject == f"We could not complete your order {short_order_id(placed.order_id)}"
    assert "Reason: We do not have enough SKU-LIMITED in stock right now." in email.text
    assert "You have not been charged" in email.text
    assert "We do not have enough SKU-LIMITED in stock right now." in email.html
    assert "2 x SKU-TSHIRT-RED-M" in email.text


def test_order_cancelled(placed: OrderPlaced, cancelled: OrderCancelled) -> None:
    email = render(cancelled, placed)
    assert_well_formed(email, placed)
    assert email.subject == f"Your order {short_order_id(placed.order_id)} has been cancelled"
    assert "Reason: You asked us to cancel the order before it was shipped." in email.text
    assert "<strong>Reason:</strong> You asked us to cancel the order before it was shipped." in email.html
    assert "2 x SKU-TSHIRT-RED-M at EUR 19.90 = EUR 39.80" in email.text
    assert "<td>SKU-MUG-BLUE</td>" in email.html
    assert "WEB-100234" in email.text
    assert "ticket 4711" not in email.text + email.html, "the canceller's internal note never reaches the customer"


def test_order_cancelled_escapes_the_reason_in_html(placed: OrderPlaced, cancelled: OrderCancelled) -> None:
    email = render(cancelled.model_copy(update={"customer_message": "<b>changed</b> mind & address"}), placed)
    assert "&lt;b&gt;changed&lt;/b&gt; mind &amp; address" in email.html
    assert "Reason: <b>changed</b> mind & address" in email.text


def test_order_refunded(placed: OrderPlaced, refunded: OrderPaymentRefunded) -> None:
    email = render(refunded, placed)
    assert_well_formed(email, placed)
    assert email.subject == f"Refund issued for your order {short_order_id(placed.order_id)}"
    assert "we have refunded EUR 25.00 for your order" in email.text
    assert "Amount refunded:  EUR 25.00" in email.text
    assert f"Refund reference: {refunded.refund_id.hex[:8].upper()}" in email.text
    assert "<strong>EUR 25.00</strong>" in email.html


def test_order_refunded_in_a_currency_without_decimals(placed: OrderPlaced, refunded: OrderPaymentRefunded) -> None:
    email = render(refunded.model_copy(update={"amount_minor": 123456, "currency": "JPY"}), placed)
    assert "Amount refunded:  JPY 123,456" in email.text
    assert "<strong>JPY 123,456</strong>" in email.html


def test_customer_data_is_escaped_in_html_only(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    name = 'Jo <script>alert("x")</script> & Co'
    hostile = placed.model_copy(update={"customer": placed.customer.model_copy(update={"name": name})})
    email = render(confirmed, hostile)
    assert "<script>" not in email.html
    assert "Jo &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in email.html
    assert f"Hello {name}," in email.text


def test_unknown_locale_falls_back_to_english(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    email = render(confirmed, placed, locale="de-AT")
    assert email.locale == "en"
    assert email.subject.startswith("Your order")


@pytest.mark.parametrize(
    ("locale", "candidates"),
    [
        ("en", ["en"]),
        ("de", ["de", "en"]),
        ("de-AT", ["de-AT", "de", "en"]),
        ("pt_BR", ["pt_BR", "pt", "en"]),
        ("../../etc/passwd", ["en"]),
        ("", ["en"]),
    ],
)
def test_locale_candidates(locale: str, candidates: list[str]) -> None:
    assert locale_candidates(locale) == candidates


def test_fallback_is_per_part(tmp_path: Path, placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    """A locale may translate some parts only; the others come from `en`."""
    for source in (TEMPLATES_DIR / "en").iterdir():
        (tmp_path / "en").mkdir(exist_ok=True)
        (tmp_path / "en" / source.name).write_text(source.read_text())
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "order_confirmation.subject.txt").write_text("Ihre Bestellung {{ order_ref }} ist bestätigt\n")
    plan = plan_email(
        confirmed,
        contact_from_order_placed(placed, locale="de-DE"),
        source_event_id=uuid4(),
        message_id_domain="x.test",
    )
    email = TemplateRenderer(tmp_path).render(plan.kind, plan.locale, plan.context)
    assert email.subject == f"Ihre Bestellung {short_order_id(placed.order_id)} ist bestätigt"
    assert email.text.startswith("Hello Jane Doe,")
    assert email.locale == "en"


def test_a_missing_value_is_an_error_not_a_blank(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    plan = plan_email(confirmed, contact_from_order_placed(placed), source_event_id=uuid4(), message_id_domain="x")
    context: dict[str, Any] = dict(plan.context)
    del context["amount_charged"]
    with pytest.raises(UndefinedError):
        TemplateRenderer().render(plan.kind, "en", context)


def test_one_line_subjects() -> None:
    assert one_line("  Your order\r\nBcc: someone@evil.example  \n") == "Your order Bcc: someone@evil.example"
