"""Every template renders with realistic event data, in every locale: email (subject, plain text, HTML)
and SMS, with fallback to `en`."""

import json
from pathlib import Path
from typing import Any, get_args

import pytest
from jinja2 import UndefinedError

from notification_service.adapters.templates import (
    PARTS,
    TEMPLATES_DIR,
    RenderedEmail,
    RenderedSms,
    TemplateRenderer,
    locale_candidates,
    one_line,
)
from notification_service.domain.notifications import (
    NotificationKind,
    NotifyingEvent,
    contact_from_order_placed,
    event_context,
    kind_for,
    short_order_id,
    template_context,
)
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

LOCALES = ("en", "de")


def context_of(event: NotifyingEvent, placed: OrderPlaced) -> dict[str, Any]:
    # Through JSON, as the event's part is stored in the send log and read back.
    stored = json.loads(json.dumps(event_context(event)))
    return template_context(contact_from_order_placed(placed), stored)


def render(event: NotifyingEvent, placed: OrderPlaced, locale: str = "en") -> RenderedEmail:
    return TemplateRenderer().render(kind_for(event), locale, context_of(event, placed))


def render_sms(event: NotifyingEvent, placed: OrderPlaced, locale: str = "en") -> RenderedSms:
    return TemplateRenderer().render_sms(kind_for(event), locale, context_of(event, placed))


def test_the_locales_are_en_and_de() -> None:
    assert TemplateRenderer().available_locales() == sorted(LOCALES)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", list(NotificationKind))
@pytest.mark.parametrize("part", PARTS)
def test_every_kind_has_every_part_in_every_locale(locale: str, kind: NotificationKind, part: str) -> None:
    assert (TEMPLATES_DIR / locale / f"{kind.value}.{part}").is_file()


def test_the_fixtures_cover_every_kind(every_event: list[NotifyingEvent]) -> None:
    assert list(dict.fromkeys(kind_for(e) for e in every_event)) == list(NotificationKind)
    assert {type(e) for e in every_event} == set(get_args(NotifyingEvent)), "every notifying event type"


GREETING = {"en": "Hello Jane Doe,", "de": "Hallo Jane Doe,"}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_template_renders_in_every_locale(
    locale: str, every_event: list[NotifyingEvent], placed: OrderPlaced
) -> None:
    ref = short_order_id(placed.order_id)
    other = "de" if locale == "en" else "en"
    for event in every_event:
        email = render(event, placed, locale)
        assert email.locale == locale
        assert ref in email.subject, (event, email.subject)
        assert "\n" not in email.subject
        assert email.text.startswith(GREETING[locale]), email.text
        assert email.html.startswith("<!DOCTYPE html>")
        assert f'<html lang="{locale}">' in email.html
        assert GREETING[locale] in email.html
        assert ref in email.text
        assert ref in email.html
        assert GREETING[other] not in email.text + email.html
        sms = render_sms(event, placed, locale)
        assert sms.locale == locale
        assert ref in sms.body
        assert "\n" not in sms.body
        assert len(sms.body) <= 320, f"{kind_for(event)}: {len(sms.body)} characters is more than two SMS"
        for rendered in (email.subject, email.text, email.html, sms.body):
            assert "{{" not in rendered
            assert "{%" not in rendered
            assert "None" not in rendered


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
    assert "was cancelled, so we have refunded\nEUR 25.00 to the payment method you used." in email.text
    assert "Items not shipped" not in email.text
    assert "Amount refunded:  EUR 25.00" in email.text
    assert f"Refund reference: {refunded.refund_id.hex[:8].upper()}" in email.text
    assert "<strong>EUR 25.00</strong>" in email.html


def test_a_stored_cancel_refund_from_before_the_reasons_still_renders(
    placed: OrderPlaced, refunded: OrderPaymentRefunded
) -> None:
    stored = {k: v for k, v in event_context(refunded).items() if k not in ("refund_reason", "refunded_items")}
    context = template_context(contact_from_order_placed(placed), stored)
    email = TemplateRenderer().render(NotificationKind.ORDER_REFUNDED, "de", context)
    assert "wurde storniert" in email.text
    assert "stornierte Bestellung" in TemplateRenderer().render_sms(NotificationKind.ORDER_REFUNDED, "de", context).body


def test_a_return_refund_says_what_came_back(placed: OrderPlaced, return_refunded: OrderReturnRefunded) -> None:
    ref = short_order_id(placed.order_id)
    email = render(return_refunded, placed)
    assert_well_formed(email, placed)
    assert "we have received the items you sent back" in email.text
    assert "refunded EUR 39.80 for them" in email.text
    # Two units of one sku (from two warehouses): one line for the customer.
    assert "Returned items:\n  2 x SKU-TSHIRT-RED-M\n" in email.text
    assert "<li>2 &times; SKU-TSHIRT-RED-M</li>" in email.html
    assert render_sms(return_refunded, placed).body == (
        f"We refunded EUR 39.80 for the items you returned from order {ref} "
        f"(reference {return_refunded.refund_id.hex[:8].upper()})."
    )
    german = render(return_refunded, placed, "de")
    assert "die Sie aus Ihrer Bestellung" in german.text
    assert "Zurückgesendete Artikel:\n  2 x SKU-TSHIRT-RED-M\n" in german.text
    assert "zurückgesendeten Artikel" in render_sms(return_refunded, placed, "de").body


def test_a_short_ship_refund_says_what_could_not_be_shipped(
    placed: OrderPlaced, short_ship_refunded: OrderShortShipRefunded
) -> None:
    email = render(short_ship_refunded, placed)
    assert_well_formed(email, placed)
    assert "we could not ship some items of your order" in email.text
    assert "refunded EUR 12.50 for them" in email.text
    assert "Items not shipped:\n  1 x SKU-MUG-BLUE\n" in email.text
    assert "The rest of your order is on\nits way as planned." in email.text
    assert "<li>1 &times; SKU-MUG-BLUE</li>" in email.html
    assert "for items we could not ship" in render_sms(short_ship_refunded, placed).body
    german = render(short_ship_refunded, placed, "de")
    assert "nicht liefern" in german.text
    assert "Nicht gelieferte Artikel:\n  1 x SKU-MUG-BLUE\n" in german.text
    assert "nicht lieferbare Artikel" in render_sms(short_ship_refunded, placed, "de").body


def test_delivery_failed(placed: OrderPlaced, delivery_failed: ShipmentDeliveryFailed) -> None:
    ref = short_order_id(placed.order_id)
    email = render(delivery_failed, placed)
    assert_well_formed(email, placed)
    assert email.subject == f"We could not deliver your order {ref}"
    assert "on Friday, 14 March 2025, but could not." in email.text
    assert "The carrier says: Recipient not at home; card left" in email.text
    assert "Last seen:       Berlin-Mitte depot" in email.text
    sms = render_sms(delivery_failed, placed).body
    assert "DHL could not deliver your parcel" in sms
    assert "JJD000390007713" in sms
    german = render(delivery_failed, placed, "de")
    assert german.subject == f"Ihre Bestellung {ref} konnte nicht zugestellt werden"
    assert "am Freitag, 14. März 2025 versucht" in german.text
    without_reason = delivery_failed.model_copy(update={"reason": "", "location": None})
    assert "The carrier says" not in render(without_reason, placed).text
    assert "None" not in render(without_reason, placed).text


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
    email = render(confirmed, placed, locale="fr-CA")
    assert email.locale == "en"
    assert email.subject.startswith("Your order")
    assert render_sms(confirmed, placed, locale="fr").locale == "en"


def test_a_regional_locale_falls_back_to_its_language(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    email = render(confirmed, placed, locale="de-AT")
    assert email.locale == "de"
    assert email.subject == f"Ihre Bestellung {short_order_id(placed.order_id)} ist bestätigt"


def test_german_shipping_notice(placed: OrderPlaced, shipped: OrderShipped) -> None:
    email = render(shipped, placed, "de")
    assert "Voraussichtliche Zustellung: Freitag, 14. März 2025" in email.text
    assert "Sendungsnummer:         JJD000390007713" in email.text
    assert 'href="https://tracking.example/track?id=JJD000390007713&amp;lang=en"' in email.html
    sms = render_sms(shipped, placed, "de")
    assert sms.body.startswith(f"Ihre Bestellung {short_order_id(placed.order_id)} wurde mit DHL versandt")
    assert "voraussichtlich Freitag, 14. März 2025" in sms.body


def test_german_reasons_are_fixed_wording_per_code(
    placed: OrderPlaced, rejected: OrderRejected, cancelled: OrderCancelled
) -> None:
    assert (
        "Grund: Einige Artikel sind derzeit nicht in ausreichender Menge vorrätig."
        in render(rejected, placed, "de").text
    )
    assert "Grund: Sie haben die Stornierung vor dem Versand beantragt." in render(cancelled, placed, "de").text


def test_an_operators_note_never_reaches_the_customer(placed: OrderPlaced, rejected: OrderRejected) -> None:
    closed = rejected.model_copy(update={"reason_code": "resolved_by_operator", "reason": "dup of ticket 99, fraud?"})
    for locale in LOCALES:
        email, sms = render(closed, placed, locale), render_sms(closed, placed, locale)
        assert "ticket 99" not in email.text + email.html + sms.body


def test_payment_failed(placed: OrderPlaced, payment_declined: OrderPaymentDeclined) -> None:
    email = render(payment_declined, placed)
    assert email.subject == f"Payment for your order {short_order_id(placed.order_id)} failed"
    assert "Reason: The card issuer declined the payment." in email.text
    assert "You have not been charged." in email.text


def test_order_received(placed: OrderPlaced) -> None:
    email = render(placed, placed)
    assert email.subject == f"We received your order {short_order_id(placed.order_id)}"
    assert "2 x SKU-TSHIRT-RED-M at EUR 19.90 = EUR 39.80" in email.text


def test_out_for_delivery_and_delivered(
    placed: OrderPlaced, out_for_delivery: ShipmentOutForDelivery, delivered: ShipmentDelivered
) -> None:
    ref = short_order_id(placed.order_id)
    email = render(out_for_delivery, placed)
    assert email.subject == f"Your order {ref} arrives today"
    assert "Last seen:       Berlin-Mitte depot" in email.text
    assert "JJD000390007713" in render_sms(out_for_delivery, placed).body
    email = render(delivered, placed)
    assert email.subject == f"Your order {ref} has been delivered"
    assert "on Friday, 14 March 2025 (front door)." in email.text
    assert "am Freitag, 14. März 2025 zugestellt (front door)." in render(delivered, placed, "de").text
    without_location = delivered.model_copy(update={"location": None})
    assert "None" not in render(without_location, placed).text


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
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "order_confirmation.subject.txt").write_text("Votre commande {{ order_ref }} est confirmée\n")
    renderer = TemplateRenderer(tmp_path)
    email = renderer.render(NotificationKind.ORDER_CONFIRMATION, "fr-FR", context_of(confirmed, placed))
    assert email.subject == f"Votre commande {short_order_id(placed.order_id)} est confirmée"
    assert email.text.startswith("Hello Jane Doe,")
    assert email.locale == "en"
    assert renderer.available_locales() == ["en", "fr"]


def test_a_renderer_reused_renders_what_a_fresh_one_renders(
    placed: OrderPlaced, every_event: list[NotifyingEvent]
) -> None:
    """The fallback of each (kind, part, locale) is found once; every later message of another order and
    another locale still gets its own text."""
    renderer = TemplateRenderer()
    second = placed.model_copy(update={"customer": placed.customer.model_copy(update={"name": "Max Mustermann"})})
    for order in (placed, second, placed):
        for event in every_event:
            for locale in ("en", "de", "de-AT", "fr"):
                context = context_of(event, order)
                fresh = TemplateRenderer()
                assert renderer.render(kind_for(event), locale, context) == fresh.render(
                    kind_for(event), locale, context
                )
                assert renderer.render_sms(kind_for(event), locale, context) == fresh.render_sms(
                    kind_for(event), locale, context
                )


def test_a_missing_value_is_an_error_not_a_blank(placed: OrderPlaced, confirmed: OrderConfirmed) -> None:
    context = context_of(confirmed, placed)
    del context["amount_charged"]
    for locale in LOCALES:
        with pytest.raises(UndefinedError):
            TemplateRenderer().render(NotificationKind.ORDER_CONFIRMATION, locale, context)
        with pytest.raises(UndefinedError):
            TemplateRenderer().render_sms(NotificationKind.ORDER_CONFIRMATION, locale, context)


def test_one_line_subjects() -> None:
    assert one_line("  Your order\r\nBcc: someone@evil.example  \n") == "Your order Bcc: someone@evil.example"
