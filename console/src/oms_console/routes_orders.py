"""Order search and the order page (lines, payment, shipments with tracking, returns, saga timeline)."""

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from oms_console.timeline import timeline
from oms_console.web import CHANNELS, ORDER_STATUSES, Ui

PAGE_SIZE = 25


def _day_start(value: str | None) -> str | None:
    """A date input (`2026-12-01`) as the start of that day; the API takes instants."""
    return f"{value}T00:00:00" if value else None


def router(ui: Ui) -> APIRouter:
    routes = APIRouter()

    @routes.get("/orders")
    async def search(
        request: Request,
        status: Annotated[str | None, Query(max_length=40)] = None,
        channel: Annotated[str | None, Query(max_length=40)] = None,
        customer_id: Annotated[str | None, Query(max_length=64)] = None,
        placed_from: Annotated[str | None, Query(max_length=10)] = None,
        placed_to: Annotated[str | None, Query(max_length=10)] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ) -> Response:
        session = ui.session(request)
        filters = {
            "status": status or None,
            "channel": channel or None,
            "customer_id": (customer_id or "").strip() or None,
            "placed_from": placed_from or None,
            "placed_to": placed_to or None,
        }
        found, error = await ui.attempt(
            session,
            ui.services.get(
                "order-service",
                "/orders",
                session.api_key,
                status=filters["status"],
                channel=filters["channel"],
                customer_id=filters["customer_id"],
                placed_from=_day_start(filters["placed_from"]),
                # `to` is a whole day, included: up to the next day's start.
                placed_to=_next_day(filters["placed_to"]),
                limit=PAGE_SIZE,
                cursor=cursor,
            ),
        )
        return ui.render(
            request,
            session,
            "orders.html",
            filters=filters,
            orders=found["orders"] if found else [],
            next_cursor=found["next_cursor"] if found else None,
            page=page,
            error=error,
            statuses=ORDER_STATUSES,
            channels=CHANNELS,
            nav="orders",
        )

    @routes.get("/orders/{order_id}")
    async def order_page(request: Request, order_id: str) -> Response:
        session = ui.session(request)
        key = session.api_key
        order, error = await ui.attempt(session, ui.services.get("order-service", f"/orders/{order_id}", key))
        if order is None:
            not_found = error is not None and error.status in (404, 422)
            return ui.render(
                request,
                session,
                "order.html",
                404 if not_found else 200,
                order=None,
                order_id=order_id,
                error=error,
                nav="orders",
            )
        answers = await ui.gather(
            session,
            ui.services.get("payment-service", f"/payments/{order_id}", key),
            ui.services.get("fulfilment-service", f"/orders/{order_id}/shipments", key),
            ui.services.get("order-service", f"/orders/{order_id}/tracking", key),
            ui.services.get("order-service", f"/orders/{order_id}/saga", key),
        )
        (payment, payment_error), (shipments, shipments_error), (tracking, tracking_error), (saga, saga_error) = answers
        if payment_error is not None and payment_error.status == 404:
            payment, payment_error = None, None  # no payment yet (still reserving, or rejected before)
        return ui.render(
            request,
            session,
            "order.html",
            order=order,
            order_id=order_id,
            error=None,
            payment=payment,
            payment_error=payment_error,
            shipments=_shipments(order, shipments, tracking),
            shipments_error=shipments_error or tracking_error,
            timeline=timeline(order, saga),
            saga_error=saga_error,
            actions=available_actions(order),
            nav="orders",
        )

    return routes


def _next_day(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return (date.fromisoformat(value) + timedelta(days=1)).isoformat() + "T00:00:00"
    except ValueError:
        return value  # the API names the bad field


def _shipments(order: dict[str, Any], fulfilment: Any, tracking: Any) -> list[dict[str, Any]]:
    """Fulfilment's shipments (status, lines) with the carrier's tracking state where it shipped."""
    tracked = {s["shipment_id"]: s for s in (tracking or {}).get("shipments", [])}
    shipped = {s["shipment_id"]: s for s in order.get("shipments", [])}
    rows = []
    for s in (fulfilment or {}).get("shipments", []):
        t = tracked.get(s["shipment_id"], {})
        rows.append({**shipped.get(s["shipment_id"], {}), **s, "tracking": t})
    known = {r["shipment_id"] for r in rows}
    rows += [
        {**s, "status": "shipped", "lines": [], "tracking": tracked.get(sid, {})}
        for sid, s in shipped.items()
        if sid not in known
    ]
    return rows


def available_actions(order: dict[str, Any]) -> list[dict[str, str | None]]:
    """The operator actions the order's state allows: what the API would accept."""
    status = order.get("status")
    actions: list[dict[str, str | None]] = []
    if status == "needs_attention":
        actions += [
            {"action": "retry", "label": "Retry the step", "refund": None},
            {"action": "skip", "label": "Skip (done by hand)", "refund": None},
            {"action": "resolve", "label": "Resolve (settled outside)", "refund": None},
        ]
    for refund in order.get("refunds", []):
        if refund.get("status") == "failed":
            for action, label in (("retry", "Retry refund"), ("skip", "Skip refund"), ("resolve", "Resolve refund")):
                actions.append({"action": action, "label": f"{label} {refund['refund']}", "refund": refund["refund"]})
    if status == "on_hold":
        actions.append({"action": "release-hold", "label": "Release hold", "refund": None})
    if status in ("placed", "awaiting_payment", "on_hold", "confirmed", "backordered"):
        actions.append({"action": "cancel", "label": "Cancel order", "refund": None})
    return actions
