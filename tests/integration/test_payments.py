"""Payments end to end: the risk review holds an order until ops release it, a risk decline compensates,
card numbers are refused at every edge, and money is conserved across a mixed run (captured minus
refunded equals the value of what shipped and was not returned, per currency), as the reconciliation
report and the payment history show."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from warehouse_steps import pick_pack_ship, post_json, receive_and_inspect, return_of, shipments_by_warehouse

from harness import (
    CARRIER_KEY,
    MANUAL_WAREHOUSES,
    SETTLED,
    WAREHOUSE_KEY,
    System,
    eventually,
    message_types,
    order_body,
    timeline_events,
    unique_sku,
)
from oms_events import default_registry, topics
from oms_events.messages import CapturePayment, SubmitOrder
from oms_events.values import order_id_for

PAN = "4111 1111 1111 1111"
registry = default_registry()


async def place(
    system: System,
    lines: list[tuple[str, int, int]],
    *,
    currency: str = "EUR",
    token: str = "tok_approve",
    channel: str = "web",
    billing_country: str | None = None,
) -> str:
    body = order_body(lines, token=token, channel=channel)
    body["currency"] = currency
    if billing_country is not None:
        body["billing_address"] = {
            "name": "Jane Doe",
            "line1": "1 Rue de Rivoli",
            "city": "Paris",
            "postal_code": "75001",
            "country": billing_country,
        }
    async with system.http() as http:
        response = await http.post("/orders", json=body)
    assert response.status_code in (201, 202), response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def payment(system: System, order_id: str, http: httpx.AsyncClient | None = None) -> dict[str, Any]:
    async with system.http(service="payment-service") as client:
        response = await (http or client).get(f"/payments/{order_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_a_risk_review_holds_the_order_until_ops_release_it_then_it_is_captured_once(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    order_id = await place(system, [(sku, 1, 4_000)], billing_country="FR")  # ships to DE

    held = await system.wait_for_status(order_id, {"on_hold", *SETTLED})
    assert held["status"] == "on_hold"
    assert held["held_by"] == "payment-risk"
    assert "billing country FR differs from shipping country DE" in held["hold_reason"]
    review = await payment(system, order_id)
    assert review["status"] == "review_required"
    assert [h["type"] for h in review["history"]] == ["PaymentReviewRequired"]
    assert review["history"][0]["payload"]["rules"] == ["country_mismatch"]

    async with system.http() as http:
        released = await http.post(
            f"/orders/{order_id}/release-hold", json={"released_by": "ops-ana", "note": "customer lives in Paris"}
        )
        assert released.status_code == 202, released.text

    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "shipped"
    assert timeline_events(order)[:5] == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderPutOnHold",
        "OrderHoldReleased",
        "OrderConfirmed",
    ]
    captures = await system.envelopes(topics.PAYMENTS_COMMANDS, order_id)
    assert [c["payload"]["reviewed"] for c in captures] == [False, True]
    assert captures[0]["payload"]["billing_country"] == "FR"
    assert captures[0]["payload"]["shipping_country"] == "DE"
    done = await payment(system, order_id)
    assert done["status"] == "captured"
    assert done["captured_minor"] == 4_000
    assert [h["type"] for h in done["history"]] == ["PaymentReviewRequired", "PaymentAuthorised", "PaymentCaptured"]
    assert message_types(await system.envelopes(topics.PAYMENTS_EVENTS, order_id)) == [
        "PaymentReviewRequired",
        "PaymentAuthorised",
        "PaymentCaptured",
    ]
    await system.wait_for_stock(sku, {"WH-BER": (4, 0)})


async def test_a_risk_decline_rejects_the_order_and_gives_the_stock_back(system: System) -> None:
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 5})
    order_id = await place(system, [(sku, 2, 60_000)], currency="GBP")  # above the GBP decline limit

    order = await system.wait_for_status(order_id, SETTLED)
    assert order["status"] == "rejected"
    [declined] = await system.envelopes(topics.PAYMENTS_EVENTS, order_id)
    assert declined["type"] == "PaymentDeclined"
    assert declined["payload"]["reason_code"] == "fraud_suspected"
    assert "120000 GBP" in declined["payload"]["reason"]
    assert (await payment(system, order_id))["decline_reason_code"] == "fraud_suspected"
    await system.wait_for_stock(sku, {"WH-BER": (5, 0)})


async def test_card_numbers_are_refused_at_every_edge_and_never_echoed(system: System) -> None:
    body = order_body([(unique_sku(), 1, 100)], token=PAN)
    async with system.http() as http:
        refused = await http.post("/orders", json=body)
    assert refused.status_code == 422
    [field] = refused.json()["fields"]
    assert field["field"] == "payment_token"
    assert "card number" in field["message"]
    assert "4111" not in refused.text

    reference = f"MP-{uuid4().hex[:12]}"
    submission = order_body([(unique_sku(), 1, 100)], channel="marketplace", reference=reference)
    order_id = str(order_id_for("marketplace", reference))
    envelope = registry.wrap(SubmitOrder.model_validate({**submission, "order_id": order_id}), producer="upstream")
    spoiled = envelope.model_copy(update={"payload": {**envelope.payload, "payment_token": PAN}})
    await system.publish(topics.ORDERS_INTAKE, spoiled.to_bytes(), key=order_id)
    found = await eventually(
        lambda: system.envelopes(topics.ORDERS_EVENTS, order_id),
        lambda events: any(e["type"] == "OrderIntakeRejected" for e in events),
    )
    [rejected] = [e for e in found if e["type"] == "OrderIntakeRejected"]
    assert [e["field"] for e in rejected["payload"]["errors"]] == ["payment_token"]
    assert "4111" not in str(rejected)

    # A command that still carries one (an older or foreign sender) is declined, never sent to the gateway.
    direct = str(uuid4())
    command = CapturePayment(
        order_id=direct, customer_id="cust-9", amount_minor=100, currency="EUR", payment_token=PAN.replace(" ", "-")
    )
    await system.publish(topics.PAYMENTS_COMMANDS, registry.wrap(command, producer="test").to_bytes(), key=direct)
    [declined] = await eventually(
        lambda: system.envelopes(topics.PAYMENTS_EVENTS, direct), lambda events: len(events) >= 1
    )
    assert declined["type"] == "PaymentDeclined"
    assert declined["payload"]["reason_code"] == "card_number_rejected"
    assert "4111" not in str(declined)


async def _short_picked_order(system: System, sku: str) -> str:
    """3 x 4_000 SEK from a manual warehouse that finds only 2: 4_000 is refunded, the rest ships."""
    order_id = await place(system, [(sku, 3, 4_000)], currency="SEK", channel="web")
    await system.wait_for_status(order_id, {"confirmed"})
    async with system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse:
        [shipment] = (await shipments_by_warehouse(warehouse, order_id, 1)).values()
        shipped = await pick_pack_ship(warehouse, shipment, missing=1)
    assert [line["quantity"] for line in shipped["short"]] == [1]
    return order_id


async def _partly_returned_order(system: System, sku: str) -> str:
    """2 x 6_000 DKK shipped from a manual warehouse and delivered; one unit comes back and is refunded."""
    order_id = await place(system, [(sku, 2, 6_000)], currency="DKK", channel="phone")
    await system.wait_for_status(order_id, {"confirmed"})
    async with (
        system.http(WAREHOUSE_KEY, service="fulfilment-service") as warehouse,
        system.http(CARRIER_KEY, service="fulfilment-service") as carrier,
        system.http() as ops,
    ):
        [shipment] = (await shipments_by_warehouse(warehouse, order_id, 1)).values()
        shipped = await pick_pack_ship(warehouse, shipment)
        update = {
            "tracking_number": shipped["tracking_number"],
            "status": "delivered",
            "occurred_at": "2026-03-05T11:00:00Z",
        }
        await post_json(carrier, f"/carriers/{shipped['carrier']}/updates", update)

        async def tracking() -> dict[str, Any]:
            response = await ops.get(f"/orders/{order_id}/tracking")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        await eventually(tracking, lambda t: t["delivered"] is True)
        response = await ops.post(
            f"/orders/{order_id}/returns", json={"lines": [{"sku": sku, "quantity": 1}], "reason": "too big"}
        )
        assert response.status_code == 202, response.text
        return_id = response.json()["return_id"]
    warehouse_id = shipment["warehouse_id"]
    await receive_and_inspect(system, return_id, [{"sku": sku, "warehouse_id": warehouse_id, "sellable": 1}])
    await return_of(system, order_id, return_id, lambda r: r["refunded"])
    return order_id


async def test_money_is_conserved_across_a_mixed_run_and_the_reconciliation_shows_it(system: System) -> None:
    """SEK and DKK are paid in this test only, so the report's SEK and DKK lines are this run's."""
    sku = unique_sku()
    await system.set_stock(sku, {"WH-BER": 50})
    # Short picks and returns need a warehouse worked by hand.
    manual_sek, manual_dkk = unique_sku(), unique_sku()
    manual = MANUAL_WAREHOUSES[0]
    await system.add_warehouse(manual)
    await system.set_stock(manual_sek, {manual: 3})
    await system.set_stock(manual_dkk, {manual: 2})
    payment_service = system.services["payment-service"]
    payment_service.stop()
    try:
        shipped_web = await place(system, [(sku, 2, 12_345)], currency="SEK", channel="web")
        shipped_phone = await place(system, [(sku, 1, 9_990)], currency="SEK", channel="phone")
        shipped_flaky = await place(system, [(sku, 3, 1_000)], currency="SEK", token="tok_transient_error")
        declined = await place(system, [(sku, 1, 5_000)], currency="SEK", token="tok_decline_insufficient_funds")
        capture_fails = await place(system, [(sku, 1, 7_000)], currency="SEK", token="tok_permanent_error")
        cancelled = await place(system, [(sku, 4, 2_500)], currency="SEK", channel="phone")
        shipped_dkk = await place(system, [(sku, 1, 5_000)], currency="DKK", channel="web")
        await system.wait_for_status(cancelled, {"awaiting_payment"})
        async with system.http() as http:
            response = await http.post(
                f"/orders/{cancelled}/cancel", json={"reason": "changed my mind", "requested_by": "phone-desk"}
            )
            assert response.status_code == 202, response.text
    finally:
        payment_service.start()
        await payment_service.wait_started()
    short_picked = await _short_picked_order(system, manual_sek)
    returned = await _partly_returned_order(system, manual_dkk)

    statuses = {
        order_id: (await system.wait_for_status(order_id, SETTLED))["status"]
        for order_id in (
            shipped_web,
            shipped_phone,
            shipped_flaky,
            declined,
            capture_fails,
            cancelled,
            shipped_dkk,
            short_picked,
            returned,
        )
    }
    assert statuses == {
        shipped_web: "shipped",
        shipped_phone: "shipped",
        shipped_flaky: "shipped",
        declined: "rejected",
        capture_fails: "rejected",
        cancelled: "cancelled",
        shipped_dkk: "shipped",
        short_picked: "shipped",
        returned: "shipped",
    }
    # What left a warehouse and did not come back, per currency.
    kept = {
        "SEK": 2 * 12_345 + 9_990 + 3 * 1_000 + 2 * 4_000,
        "DKK": 5_000 + (2 - 1) * 6_000,
    }

    async with system.http(service="payment-service") as http:
        refunded = await payment(system, cancelled, http)
        assert (refunded["status"], refunded["captured_minor"], refunded["refunded_minor"]) == (
            "refunded",
            10_000,
            10_000,
        )
        short = await eventually(lambda: payment(system, short_picked, http), lambda p: p["refunded_minor"] > 0)
        assert (short["status"], short["captured_minor"], short["refunded_minor"]) == (
            "partially_refunded",
            12_000,
            4_000,
        )
        partly_returned = await payment(system, returned, http)
        assert (partly_returned["status"], partly_returned["refunded_minor"]) == ("partially_refunded", 6_000)
        voided = await payment(system, capture_fails, http)
        assert [h["type"] for h in voided["history"]] == [
            "PaymentAuthorised",
            "PaymentAuthorisationVoided",
            "PaymentDeclined",
        ]
        assert voided["decline_reason_code"] == "capture_failed"
        today = datetime.now(UTC).date()
        window = {
            "date_from": (today - timedelta(days=1)).isoformat(),
            "date_to": (today + timedelta(days=1)).isoformat(),
        }
        reports: dict[str, Any] = {}
        for currency in kept:
            report = await http.get("/reconciliation", params={"currency": currency, **window})
            assert report.status_code == 200, report.text
            reports[currency] = report.json()
        forbidden = await http.get("/reconciliation", headers={"X-API-Key": "not-a-key"})
        assert forbidden.status_code == 401

    for currency, value in kept.items():
        [total] = reports[currency]["totals"]
        assert total["currency"] == currency
        assert total["net_minor"] == total["captured_minor"] - total["refunded_minor"] == value, currency
    sek, dkk = reports["SEK"]["totals"][0], reports["DKK"]["totals"][0]
    assert (sek["captured_minor"], sek["refunded_minor"]) == (kept["SEK"] + 10_000 + 4_000, 10_000 + 4_000)
    assert (dkk["captured_minor"], dkk["refunded_minor"]) == (5_000 + 12_000, 6_000)
    by_channel: dict[str, list[int]] = {}
    for line in reports["SEK"]["lines"]:
        assert line["net_minor"] == line["captured_minor"] - line["refunded_minor"]
        sums = by_channel.setdefault(line["channel"], [0, 0])
        sums[0] += line["captured_minor"]
        sums[1] += line["refunded_minor"]
    assert by_channel == {"web": [2 * 12_345 + 3 * 1_000 + 12_000, 4_000], "phone": [9_990 + 10_000, 10_000]}
    # A refund counts under its capture's channel: the DKK return was a phone order.
    assert {line["channel"]: line["refunded_minor"] for line in reports["DKK"]["lines"]} == {"web": 0, "phone": 6_000}
