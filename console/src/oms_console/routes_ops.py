"""Stuck orders with the operator actions, and dead letters with redrive and discard.

Every action asks for a note first (a small form, fetched by htmx into the row, or a page of its own
without scripts), carries the session's CSRF token, and answers with what the service said: accepted,
or refused with its reason. The operator's name is the one given at sign-in.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from oms_console.services import ServiceError
from oms_console.sessions import Session
from oms_console.web import Ui

ORDER_ACTIONS = ("retry", "skip", "resolve", "release-hold", "cancel")
ACTION_LABELS = {
    "retry": "Retry",
    "skip": "Skip",
    "resolve": "Resolve",
    "release-hold": "Release hold",
    "cancel": "Cancel order",
    "redrive": "Redrive",
    "discard": "Discard",
}
DEAD_LETTER_SERVICES = (
    "order-service",
    "inventory-service",
    "payment-service",
    "fulfilment-service",
    "notification-service",
)
OrderAction = Annotated[Literal["retry", "skip", "resolve", "release-hold", "cancel"], Path()]
DeadLetterAction = Annotated[Literal["redrive", "discard"], Path()]
Service = Annotated[
    Literal["order-service", "inventory-service", "payment-service", "fulfilment-service", "notification-service"],
    Path(),
]
OrderId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")]


def _order_action_call(action: str, session: Session, note: str, refund: str | None) -> tuple[str, dict[str, Any]]:
    if action == "release-hold":
        return "release-hold", {"released_by": session.operator, "note": note}
    if action == "cancel":
        return "cancel", {"reason": note, "requested_by": session.operator}
    body: dict[str, Any] = {"action": action, "operator": session.operator, "note": note}
    if refund:
        body["refund"] = refund
    return "actions", body


def router(ui: Ui) -> APIRouter:
    routes = APIRouter()

    def check_csrf(session: Session, token: str) -> None:
        if not session.csrf_ok(token):
            raise HTTPException(403, "This form is stale or was not sent from the console; reload the page.")

    def is_htmx(request: Request) -> bool:
        return bool(request.headers.get("HX-Request"))

    @routes.get("/stuck")
    async def stuck(request: Request, older_than_min: Annotated[float, Query(ge=0, le=525_600)] = 15) -> Response:
        session = ui.session(request)
        found, error = await ui.attempt(
            session,
            ui.services.get(
                "order-service", "/orders/stuck", session.api_key, older_than_s=older_than_min * 60, limit=200
            ),
        )
        orders = found["orders"] if found else []
        return ui.render(
            request,
            session,
            "stuck.html",
            orders=orders,
            actions={o["order_id"]: stuck_actions(o) for o in orders},
            older_than_min=older_than_min,
            error=error,
            nav="stuck",
        )

    @routes.get("/orders/{order_id}/actions/{action}")
    async def order_action_form(
        request: Request,
        order_id: OrderId,
        action: OrderAction,
        refund: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        session = ui.session(request)
        return ui.render(
            request,
            session,
            "action_form.html",
            partial=is_htmx(request),
            target=f"/orders/{order_id}/actions/{action}",
            back=f"/orders/{order_id}",
            label=ACTION_LABELS[action],
            subject=f"order {order_id}" + (f", refund {refund}" if refund else ""),
            refund=refund,
            nav="stuck",
        )

    @routes.post("/orders/{order_id}/actions/{action}")
    async def order_action(
        request: Request,
        order_id: OrderId,
        action: OrderAction,
        note: Annotated[str, Form(max_length=1000)] = "",
        refund: Annotated[str, Form(max_length=100)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        session = ui.session(request)
        check_csrf(session, csrf_token)
        note = note.strip()
        ok, message = False, "Write a note: it is recorded with the action."
        if note:
            route, body = _order_action_call(action, session, note, refund or None)
            answer, error = await ui.attempt(
                session, ui.services.post("order-service", f"/orders/{order_id}/{route}", session.api_key, body)
            )
            ok = error is None
            message = f"{ACTION_LABELS[action]}: accepted ({answer.status})." if answer else _refusal(error)
        if not is_htmx(request):
            return RedirectResponse(f"/orders/{order_id}", status_code=303)
        return ui.render(
            request, session, "action_result.html", ok=ok, message=message, link=f"/orders/{order_id}", partial=True
        )

    @routes.get("/dead-letters")
    async def dead_letters(
        request: Request,
        service: Annotated[str | None, Query(max_length=40)] = None,
        status: Annotated[Literal["pending", "redriven", "discarded", ""] | None, Query()] = "pending",
    ) -> Response:
        session = ui.session(request)
        chosen = [s for s in DEAD_LETTER_SERVICES if not service or s == service]
        answers = await ui.gather(
            session,
            *(
                ui.services.get(s, "/ops/dead-letters", session.api_key, status=status or None, limit=200)
                for s in chosen
            ),
        )
        topics = [
            {"service": s, "list": found, "error": error} for s, (found, error) in zip(chosen, answers, strict=True)
        ]
        return ui.render(
            request,
            session,
            "dead_letters.html",
            topics=topics,
            services=DEAD_LETTER_SERVICES,
            service=service,
            status_filter=status,
            nav="dead-letters",
        )

    @routes.get("/dead-letters/{service}/{partition}/{offset}/{action}")
    async def dead_letter_form(
        request: Request,
        service: Service,
        partition: Annotated[int, Path(ge=0, le=100_000)],
        offset: Annotated[int, Path(ge=0)],
        action: DeadLetterAction,
    ) -> Response:
        session = ui.session(request)
        return ui.render(
            request,
            session,
            "action_form.html",
            partial=is_htmx(request),
            target=f"/dead-letters/{service}/{partition}/{offset}/{action}",
            back="/dead-letters",
            label=ACTION_LABELS[action],
            subject=f"dead letter {partition}:{offset} of {service}",
            refund=None,
            nav="dead-letters",
        )

    @routes.post("/dead-letters/{service}/{partition}/{offset}/{action}")
    async def dead_letter_action(
        request: Request,
        service: Service,
        partition: Annotated[int, Path(ge=0, le=100_000)],
        offset: Annotated[int, Path(ge=0)],
        action: DeadLetterAction,
        note: Annotated[str, Form(max_length=2000)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        session = ui.session(request)
        check_csrf(session, csrf_token)
        note = note.strip()
        ok, message = False, "Write a note: it is recorded with the action."
        if note:
            answer, error = await ui.attempt(
                session,
                ui.services.post(
                    service,
                    f"/ops/dead-letters/{partition}/{offset}/{action}",
                    session.api_key,
                    {"operator": session.operator, "reason": note},
                ),
            )
            ok = error is None
            if answer is not None:
                to = answer.body.get("republished_to") if isinstance(answer.body, dict) else None
                message = f"{ACTION_LABELS[action]}: done" + (f", republished to {to}." if to else ".")
            else:
                message = _refusal(error)
        if not is_htmx(request):
            return RedirectResponse("/dead-letters", status_code=303)
        return ui.render(
            request, session, "action_result.html", ok=ok, message=message, link="/dead-letters", partial=True
        )

    return routes


def _refusal(error: ServiceError | None) -> str:
    if error is None:
        return "Refused."
    if error.status == 409:
        return f"Refused: {error.message}"
    if error.status == 403:
        return "Refused: this key may not do that."
    return error.message


def stuck_actions(order: dict[str, Any]) -> list[dict[str, str | None]]:
    """The buttons for a stuck order, by why it is stuck."""
    reason, status = order.get("reason"), order.get("status")
    actions: list[dict[str, str | None]] = []
    if status == "needs_attention":
        actions += [{"action": a, "refund": None} for a in ("retry", "skip", "resolve")]
    for refund in order.get("failed_refunds", []):
        actions += [{"action": a, "refund": refund.get("refund")} for a in ("retry", "skip", "resolve")]
    if status == "on_hold" or reason == "on_hold":
        actions.append({"action": "release-hold", "refund": None})
    if status in ("placed", "awaiting_payment", "on_hold", "confirmed", "backordered"):
        actions.append({"action": "cancel", "refund": None})
    return actions
