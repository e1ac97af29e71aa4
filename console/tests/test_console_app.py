"""The console app with its HTTP client faked at the transport: sign-in, sessions and CSRF, and every way a
service can fail (down, slow, 503, refusing the key, refusing an action) shown as a message, never a 500."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from oms_console import vendor
from oms_console.app import create_app
from oms_console.formatting import Formatter, locale_from_header
from oms_console.sessions import COOKIE_NAME
from oms_console.settings import ConsoleSettings

OPS_KEY = "console-test-ops-key-0123456789"
ORDER_ID = "0b7e5f0e-6a43-4f5e-9d55-0a1c2b3d4e5f"
Handler = Callable[[httpx.Request], httpx.Response]

ORDER = {
    "order_id": ORDER_ID,
    "status": "on_hold",
    "channel": "web",
    "external_reference": "EXT-1",
    "customer_id": "cust-1",
    "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1999}],
    "currency": "EUR",
    "total_minor": 3998,
    "delivery_method": "standard",
    "rejection_reason": None,
    "hold_reason": "total above 10000.00",
    "held_by": "risk-rule",
    "shipments": [],
    "returns": [],
    "refunds": [],
    "timeline": [
        {"at": "2026-12-04T01:00:00+00:00", "event": "OrderPlaced", "description": "Order placed via web"},
        {"at": "2026-12-04T01:00:01+00:00", "event": "OrderStockReserved", "description": "Stock reserved"},
        {"at": "2026-12-04T01:00:01+00:00", "event": "OrderPutOnHold", "description": "Held by risk-rule"},
    ],
}


class FakeServices:
    """Answers by (service port, method, path); records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str, str], Handler] = {}
        self.requests: list[httpx.Request] = []

    def on(self, service: str, method: str, path: str, handler: Handler | httpx.Response | dict[str, Any]) -> None:
        if isinstance(handler, dict):
            body = handler
            self.routes[(service, method, path)] = lambda _: httpx.Response(200, json=body)
        elif isinstance(handler, httpx.Response):
            answer = handler
            self.routes[(service, method, path)] = lambda _: answer
        else:
            self.routes[(service, method, path)] = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.routes.get((request.url.host, request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"error": "not_found", "message": f"no fake for {request.url.path}"})
        return handler(request)


@pytest.fixture
def fake() -> FakeServices:
    services = FakeServices()
    services.on("order", "GET", "/orders/stuck", {"as_of": "2026-12-04T01:00:00Z", "older_than_s": 900, "orders": []})
    return services


@pytest.fixture
def client(fake: FakeServices) -> Iterator[TestClient]:
    settings = ConsoleSettings(
        order_service_url="http://order",
        inventory_service_url="http://inventory",
        payment_service_url="http://payment",
        fulfilment_service_url="http://fulfilment",
        notification_service_url="http://notification",
    )
    app = create_app(settings, transport=httpx.MockTransport(fake))
    with TestClient(app, base_url="http://console", follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, key: str = OPS_KEY) -> httpx.Response:
    answer: httpx.Response = client.post(
        "/signin",
        data={"operator": "ops-ana", "api_key": key, "tz": "Europe/Berlin"},
        headers={"Accept-Language": "de-DE,de;q=0.9"},
    )
    return answer


def csrf(client: TestClient) -> str:
    page: str = client.get("/orders").text
    marker = 'name="csrf_token" value="'
    return page[page.index(marker) + len(marker) :].split('"', 1)[0]


def down(_: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def test_signing_in_keeps_the_key_on_the_server_in_an_http_only_strict_cookie(
    client: TestClient, fake: FakeServices
) -> None:
    fake.on("order", "GET", "/orders", {"orders": [], "next_cursor": None})
    answer = sign_in(client)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/orders"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert OPS_KEY not in cookie
    assert OPS_KEY not in answer.headers["location"]
    # The key goes to the services, and only there.
    assert fake.requests[-1].headers["X-API-Key"] == OPS_KEY
    page = client.get("/orders")
    assert page.status_code == 200
    assert OPS_KEY not in page.text
    assert fake.requests[-1].headers["X-API-Key"] == OPS_KEY
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("status", "says"), [(401, "That key is not valid."), (403, "That key is not an ops key")])
def test_a_wrong_or_non_ops_key_stays_on_the_sign_in_page(
    client: TestClient, fake: FakeServices, status: int, says: str
) -> None:
    fake.on("order", "GET", "/orders/stuck", httpx.Response(status, json={"error": "x", "message": "no"}))
    answer = sign_in(client, key="wrong-key-0123456789")
    assert answer.status_code == 401
    assert says in answer.text
    assert "set-cookie" not in answer.headers
    assert client.get("/orders").headers["location"] == "/signin"


def test_a_post_from_another_site_is_refused(client: TestClient, fake: FakeServices) -> None:
    answer = client.post(
        "/signin",
        data={"operator": "x", "api_key": OPS_KEY, "tz": "UTC"},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    assert not fake.requests
    same = client.post(
        "/signin", data={"operator": "x", "api_key": OPS_KEY, "tz": "UTC"}, headers={"Origin": "http://console"}
    )
    assert same.status_code == 303


def test_without_a_session_every_page_is_the_sign_in_page(client: TestClient, fake: FakeServices) -> None:
    for path in ("/", "/orders", f"/orders/{ORDER_ID}", "/stuck", "/dead-letters", "/reports/sales", "/reports/stock"):
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/signin"
    client.cookies.set(COOKIE_NAME, "forged.value")
    assert client.get("/orders").headers["location"] == "/signin"
    htmx = client.get(f"/orders/{ORDER_ID}/actions/retry", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"] == "/signin"
    assert not [r for r in fake.requests if r.url.path != "/orders/stuck"], "no data was asked for"


def test_order_search_passes_the_filters_and_pages_by_cursor(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    summary = {
        "order_id": ORDER_ID,
        "channel": "web",
        "external_reference": "EXT-1",
        "customer_id": "cust-1",
        "status": "shipped",
        "total_minor": 3998,
        "currency": "EUR",
        "placed_at": "2026-12-04T01:00:00+00:00",
        "last_event_at": "2026-12-04T01:00:05+00:00",
        "last_event_type": "OrderShipped",
        "shipment_status": "shipped",
        "carrier": "DHL",
        "tracking_number": "123",
        "version": 4,
    }
    fake.on("order", "GET", "/orders", {"orders": [summary], "next_cursor": "c2"})
    page = client.get(
        "/orders",
        params={"status": "shipped", "channel": "web", "placed_from": "2026-12-01", "placed_to": "2026-12-03"},
    )
    asked = fake.requests[-1].url.params
    assert dict(asked) == {
        "status": "shipped",
        "channel": "web",
        "placed_from": "2026-12-01T00:00:00",
        "placed_to": "2026-12-04T00:00:00",  # the whole last day
        "limit": "25",
    }
    assert f'href="/orders/{ORDER_ID}"' in page.text
    assert "cursor=c2&amp;page=2&amp;status=shipped&amp;channel=web" in page.text
    client.get("/orders", params={"cursor": "c2", "page": 2, "status": "shipped"})
    assert fake.requests[-1].url.params["cursor"] == "c2"


def test_a_service_that_is_down_is_a_clear_message_not_a_500(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    fake.on("order", "GET", "/orders", down)
    page = client.get("/orders")
    assert page.status_code == 200
    assert "The order service cannot be reached (ConnectError). Is it running?" in page.text


def test_a_slow_service_and_a_503_are_messages_too(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)

    def slow(_: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    fake.on("order", "GET", "/orders/stuck", slow)
    assert "did not answer in time" in client.get("/stuck").text
    fake.on(
        "inventory",
        "GET",
        "/reports/stock-by-warehouse",
        httpx.Response(503, json={"error": "unavailable", "message": "The database does not answer."}),
    )
    page = client.get("/reports/stock")
    assert page.status_code == 200
    assert "The inventory service is unavailable: The database does not answer.." in page.text


def test_the_order_page_shows_what_answers_and_says_what_does_not(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    fake.on("order", "GET", f"/orders/{ORDER_ID}", ORDER)
    fake.on("payment", "GET", f"/payments/{ORDER_ID}", down)
    fake.on("fulfilment", "GET", f"/orders/{ORDER_ID}/shipments", {"order_id": ORDER_ID, "shipments": []})
    fake.on("order", "GET", f"/orders/{ORDER_ID}/tracking", {"shipments": []})
    fake.on(
        "order",
        "GET",
        f"/orders/{ORDER_ID}/saga",
        {
            "order_id": ORDER_ID,
            "pending_step": {
                "awaiting": "PaymentCaptured",
                "command": "CapturePayment",
                "attempts": 2,
                "deadline_at": "2026-12-04T01:04:00+00:00",
                "state": "waiting",
                "updated_at": "2026-12-04T01:02:00+00:00",
            },
        },
    )
    page = client.get(f"/orders/{ORDER_ID}")
    assert page.status_code == 200
    assert "The payment service cannot be reached" in page.text
    assert "39,98\xa0€" in page.text  # de-DE from Accept-Language
    assert 'data-event="OrderPutOnHold"' in page.text
    assert "reply to <code>ReserveStock</code>" in page.text
    assert "Release hold" in page.text
    # Times in the zone the browser gave at sign-in: 01:00 UTC is 02:00 in Berlin.
    assert "02:00:00" in page.text
    # The step the saga waits on, with its command, sends and deadline.
    assert 'data-event="awaiting PaymentCaptured"' in page.text
    assert "command <code>CapturePayment</code> sent" in page.text
    assert "deadline 04.12.2026, 02:04:00 · sent 2 times" in page.text


def test_an_unknown_order_is_a_404_page(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    fake.on(
        "order",
        "GET",
        f"/orders/{ORDER_ID}",
        httpx.Response(404, json={"error": "order_not_found", "message": "No order"}),
    )
    page = client.get(f"/orders/{ORDER_ID}")
    assert page.status_code == 404
    assert "No order" in page.text


def test_an_action_needs_the_csrf_token_and_sends_the_operator_and_note(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    fake.on("order", "GET", "/orders", {"orders": [], "next_cursor": None})
    sent: list[dict[str, Any]] = []

    def release(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(202, json=ORDER)

    fake.on("order", "POST", f"/orders/{ORDER_ID}/release-hold", release)
    forged = client.post(f"/orders/{ORDER_ID}/actions/release-hold", data={"note": "ok", "csrf_token": "guess"})
    assert forged.status_code == 403
    assert not sent
    answer = client.post(
        f"/orders/{ORDER_ID}/actions/release-hold",
        data={"note": "customer verified", "csrf_token": csrf(client)},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert "Release hold: accepted (202)." in answer.text
    assert sent == [{"released_by": "ops-ana", "note": "customer verified"}]


def test_a_refused_action_says_why(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    fake.on("order", "GET", "/orders", {"orders": [], "next_cursor": None})
    fake.on(
        "order",
        "POST",
        f"/orders/{ORDER_ID}/actions",
        httpx.Response(409, json={"error": "action_not_allowed", "message": "The order does not need attention."}),
    )
    answer = client.post(
        f"/orders/{ORDER_ID}/actions/retry",
        data={"note": "try again", "csrf_token": csrf(client)},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert "Refused: The order does not need attention." in answer.text
    assert 'class="result refused"' in answer.text


def test_a_key_the_services_stop_accepting_ends_the_session(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    fake.on("order", "GET", "/orders", httpx.Response(401, json={"error": "unauthenticated", "message": "no"}))
    answer = client.get("/orders")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?reason=")
    fake.on("order", "GET", "/orders", {"orders": [], "next_cursor": None})
    assert client.get("/orders").headers["location"] == "/signin"


def test_dead_letters_of_a_service_that_is_down_do_not_hide_the_others(client: TestClient, fake: FakeServices) -> None:
    sign_in(client)
    letters = {
        "topic": "oms.payment.dlq",
        "total": 1,
        "pending": 1,
        "dead_letters": [
            {
                "partition": 0,
                "offset": 7,
                "key": ORDER_ID,
                "message_type": None,
                "reason": "unreadable envelope: not JSON",
                "consumer": "payment-service",
                "source_topic": "oms.payments.commands",
                "source_partition": 3,
                "source_offset": 12,
                "failed_at": "2026-12-04T01:00:00Z",
                "dead_lettered_at": "2026-12-04T01:00:00Z",
                "status": "pending",
                "actions": [],
                "value_preview": "\\x00 not an envelope",
            }
        ],
    }
    fake.on("payment", "GET", "/ops/dead-letters", letters)
    fake.on("order", "GET", "/ops/dead-letters", down)
    page = client.get("/dead-letters")
    assert page.status_code == 200
    assert "unreadable envelope: not JSON" in page.text
    assert "The order service cannot be reached" in page.text
    assert "/dead-letters/payment-service/0/7/redrive" in page.text


def test_babel_formats_money_and_negotiates_the_locale() -> None:
    assert locale_from_header("de-DE,de;q=0.9,en;q=0.8") == "de_DE"
    assert locale_from_header("fr-CA") == "fr_FR"
    assert locale_from_header(None) == "en_GB"
    assert Formatter("en_GB", "UTC").money(123456, "EUR") == "€1,234.56"
    assert Formatter("en_GB", "UTC").money(1234, "JPY") == "JP¥1,234"
    assert Formatter("en_GB", "UTC").duration(3725) == "1 h 2 min"


def test_the_vendored_front_end_libraries_are_the_pinned_ones() -> None:
    assert vendor.problems() == []
