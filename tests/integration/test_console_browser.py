"""The ops console in a real headless Chromium, against the running system: sign in, find an order placed
here and watch its saga timeline reach shipped, release a held order from the stuck list and see the
action in its timeline, each report's chart drawn with data, dead letters listed with their reason and
discarded, and a wrong or missing key kept on the sign-in page.

Chromium is Debian's (`make chromium`); Playwright drives it (its own browser download is not used).
Screenshots of what each test checked go to .local/test-artefacts/console/; with
UPDATE_README_SCREENSHOT=1 the order page's also replaces docs/img/console-order.png, the README's
picture (a test run leaves the working tree as it found it otherwise).
"""

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from harness import LOG_DIR, OPS_KEY, REPO, SETTLED, System, free_port, order_body, unique_sku
from oms_events import topics

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACTS = REPO / ".local" / "test-artefacts" / "console"
README_SCREENSHOT = REPO / "docs" / "img" / "console-order.png"
BIG_PRICE = 600_000  # two of them: above HOLD_ABOVE_MINOR (1,000,000 in conftest.py), so the order is held
OPERATOR = "ops-ana"


@pytest.fixture(scope="module")
def console(system: System) -> Iterator[str]:
    """The console as a process of its own, pointed at the system's services."""
    port = free_port()
    env = {
        **os.environ,
        "CONSOLE_PORT": str(port),
        "ORDER_SERVICE_URL": system.http_urls["order-service"],
        "INVENTORY_SERVICE_URL": system.http_urls["inventory-service"],
        "PAYMENT_SERVICE_URL": system.http_urls["payment-service"],
        "FULFILMENT_SERVICE_URL": system.http_urls["fulfilment-service"],
        "NOTIFICATION_SERVICE_URL": system.http_urls["notification-service"],
        "LOG_FORMAT": "json",
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "console.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "oms_console"], env=env, stdout=log, stderr=log, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the console exited; see .local/test-logs/console.log"
            assert time.monotonic() < deadline, "the console did not answer within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make chromium` installs Debian's", pytrace=False)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="Europe/Berlin"
    )
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert not problems, f"script errors on the page: {problems}"


async def sign_in(page: Page, console: str, key: str = OPS_KEY) -> None:
    await page.goto(console + "/signin")
    await page.fill("#operator", OPERATOR)
    await page.fill("#api_key", key)
    await page.click("button[type=submit]")


async def shot(page: Page, name: str) -> Path:
    path = ARTEFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def timeline_of(page: Page) -> list[str]:
    return [e for e in await page.locator("#timeline li").evaluate_all("els => els.map(e => e.dataset.event)")]


async def reload_until(page: Page, check: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"not reached within {timeout_s}s: {await timeline_of(page)}"
        await asyncio.sleep(0.5)
        await page.reload()


async def test_a_wrong_or_missing_key_gets_the_sign_in_page_and_never_data(
    system: System, console: str, page: Page
) -> None:
    response = await page.goto(console + "/orders")
    assert page.url.endswith("/signin")
    assert response is not None
    assert response.status == 200
    await expect(page.locator("h1")).to_have_text("Sign in")
    assert await page.locator("#orders").count() == 0

    await sign_in(page, console, key="not-a-key-of-this-system")
    await expect(page.locator("[role=alert]")).to_contain_text("not valid")
    assert await page.locator("#orders").count() == 0
    assert "not-a-key" not in page.url
    await shot(page, "signin-wrong-key")
    cookies = await page.context.cookies()
    assert not cookies, "a failed sign-in must not start a session"

    # A cookie the console did not sign is no session either.
    await page.context.add_cookies([{"name": "oms_console_session", "value": "forged", "url": console}])
    await page.goto(console + "/stuck")
    assert page.url.endswith("/signin")

    # Signed in, the cookie is HttpOnly and SameSite=Strict, and holds no key.
    await sign_in(page, console)
    await expect(page.locator("h1")).to_have_text("Orders")
    [cookie] = [c for c in await page.context.cookies() if c["name"] == "oms_console_session"]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert OPS_KEY not in cookie["value"]
    assert await page.evaluate("document.cookie") == ""
    # Signing out ends it: the same cookie gets the sign-in page again.
    await page.click("text=Sign out")
    await page.context.add_cookies(
        [{"name": cookie["name"], "value": cookie["value"], "url": console, "sameSite": "Strict", "httpOnly": True}]
    )
    await page.goto(console + "/orders")
    assert page.url.endswith("/signin")


async def test_an_order_placed_here_is_found_and_its_timeline_reaches_shipped(
    system: System, console: str, page: Page
) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 10})
    customer = f"cust-console-{uuid4().hex[:8]}"
    body = order_body([(sku, 2, 1999)])
    body["customer"]["customer_id"] = customer
    async with system.http() as http:
        placed = await http.post("/orders", json=body)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    await system.wait_for_status(order_id, SETTLED)

    await sign_in(page, console)
    await page.fill("input[name=customer_id]", customer)
    await page.click("form.filters button[type=submit]")
    rows = page.locator("#orders tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(customer)
    await expect(rows.first).to_contain_text("€39.98")
    await rows.first.locator("a").click()

    await expect(page.locator("h1")).to_contain_text(order_id)

    async def shipped() -> bool:
        return "OrderShipped" in await timeline_of(page)

    await reload_until(page, shipped)
    events = await timeline_of(page)
    assert events[:4] == ["OrderPlaced", "OrderStockReserved", "OrderConfirmed", "OrderShipped"], events
    await expect(page.locator("h1 .status")).to_have_text("shipped")
    shipped_entry = page.locator("#timeline li[data-event=OrderShipped]")
    await expect(shipped_entry).to_contain_text("reply to ShipOrder")
    await expect(shipped_entry.locator("time")).to_have_count(1)
    await expect(page.locator("#shipments tbody tr")).to_have_count(1)
    await expect(page.locator("#shipments")).to_contain_text("WH-BER")
    await expect(page.locator("#payment-h + p, #payment-h ~ p").first).to_contain_text("captured")
    path = await shot(page, "order-shipped")
    if os.environ.get("UPDATE_README_SCREENSHOT") == "1":
        shutil.copyfile(path, README_SCREENSHOT)


async def test_a_held_order_is_released_from_the_stuck_list_and_the_action_is_in_its_timeline(
    system: System, console: str, page: Page
) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    order_id = (await system.place_order([(sku, 2, BIG_PRICE)])).json()["order_id"]
    held = await system.wait_for_status(order_id, {"on_hold", *SETTLED})
    assert held["status"] == "on_hold"

    await sign_in(page, console)
    await page.goto(console + "/stuck?older_than_min=0")
    row = page.locator(f"#stuck-{order_id}")
    await expect(row).to_contain_text("on hold")
    await row.get_by_role("button", name="Release hold").click()
    note = row.locator("textarea[name=note]")
    await expect(note).to_be_visible()
    # Without a note nothing is sent: the browser asks for one.
    await row.get_by_role("button", name="Confirm: Release hold").click()
    assert await note.evaluate("e => e.validity.valueMissing")
    await note.fill("customer verified by phone")
    await row.get_by_role("button", name="Confirm: Release hold").click()
    await expect(row.locator(".result.ok")).to_contain_text("accepted")
    await shot(page, "stuck-released")

    await system.wait_for_status(order_id, {"shipped", "rejected", "cancelled", "needs_attention"})
    await page.goto(console + f"/orders/{order_id}")
    released = page.locator("#timeline li[data-event=OrderHoldReleased]")
    await expect(released).to_contain_text(OPERATOR)
    await expect(released).to_contain_text("customer verified by phone")
    await expect(released.locator(".kind")).to_have_text("operator action")
    events = await timeline_of(page)
    assert events.index("OrderPutOnHold") < events.index("OrderHoldReleased") < events.index("OrderShipped")
    await shot(page, "order-after-release")

    # A second release is refused by order-service, and the console says why instead of failing.
    await page.goto(console + "/stuck?older_than_min=0")
    assert await page.locator(f"#stuck-{order_id}").count() == 0


async def test_each_report_draws_its_chart_with_data(system: System, console: str, page: Page) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    order_id = (await system.place_order([(sku, 1, 2500)])).json()["order_id"]
    await system.wait_for_status(order_id, SETTLED)

    await sign_in(page, console)
    for path, charts in (
        ("/reports/sales", ("sales-daily", "sales-channels")),
        ("/reports/fulfilment", ("fulfilment-warehouses",)),
        ("/reports/stock", ("stock-warehouses",)),
    ):
        await page.goto(console + path)
        for chart in charts:
            canvas = page.locator(f"canvas#{chart}")
            await expect(canvas).to_have_attribute("data-drawn", "true")
            points = await canvas.evaluate(
                "c => Chart.getChart(c).data.datasets.reduce((n, d) => n + d.data.filter(v => v).length, 0)"
            )
            assert points > 0, f"{path}: chart {chart} has no data"
            box = await canvas.bounding_box()
            assert box is not None
            assert box["width"] > 200
            assert box["height"] > 100
        await shot(page, "report-" + path.rsplit("/", 1)[-1])
    await expect(page.locator("#low-stock")).to_be_visible()


async def test_dead_letters_are_listed_with_their_reason_and_discarded_with_a_note(
    system: System, console: str, page: Page
) -> None:
    key = str(uuid4())
    await system.publish(topics.PAYMENTS_COMMANDS, b"\x00 not an envelope", key=key)

    await sign_in(page, console)
    row = page.locator("table.dead-letters tr", has_text=key)

    async def listed() -> bool:
        return await row.count() == 1

    await page.goto(console + "/dead-letters?service=payment-service")
    await reload_until(page, listed, timeout_s=30)
    await expect(row).to_contain_text("oms.payments.commands")
    await expect(row.locator(".reason")).not_to_be_empty()
    await shot(page, "dead-letters")
    await row.get_by_role("button", name="Discard").click()
    await row.locator("textarea[name=note]").fill("test poison, nothing to redo")
    await row.get_by_role("button", name="Confirm: Discard").click()
    await expect(row.locator(".result.ok")).to_contain_text("Discard: done")

    await page.goto(console + "/dead-letters?service=payment-service&status=discarded")
    await expect(page.locator("table.dead-letters tr", has_text=key)).to_contain_text(f"discarded by {OPERATOR}")
