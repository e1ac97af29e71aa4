"""The HTTP API of order-service (FastAPI). Every error is a structured body naming the field; never a 500."""

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Response, status
from fastapi.responses import JSONResponse

from oms_events.values import PlainText, order_id_for
from oms_runtime.http_api import DEFAULT_MAX_BODY_BYTES, ServiceApi
from oms_runtime.logging import get_logger
from order_service.adapters.idempotency import IdempotencyStore
from order_service.domain.order import ActionNotAllowedError
from order_service.entrypoints.auth import Authenticator, Principal, forbidden
from order_service.entrypoints.errors import error_response
from order_service.entrypoints.schemas import (
    CancelOrderRequest,
    ErrorBody,
    FieldError,
    HoldRequest,
    OperatorActionRequest,
    PlaceOrderRequest,
    ReleaseHoldRequest,
)
from order_service.handlers import (
    OrderCommands,
    OrderNotFoundError,
    OrderPlacement,
    OrderQueries,
    order_placed,
)
from order_service.views import OrderView, SagaView, order_view

log = get_logger(__name__)


def _fingerprint(request: PlaceOrderRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def create_app(
    placement: OrderPlacement,
    queries: OrderQueries,
    commands: OrderCommands,
    idempotency: IdempotencyStore,
    auth: Authenticator,
    routers: Sequence[APIRouter] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    placement_deadline_s: float = 3.0,
) -> FastAPI:
    app = ServiceApi(
        title="OMS order-service",
        description="Places orders from every sales channel and reports their progress.",
        max_body_bytes=max_body_bytes,
    )

    # The shape of every command on an order: accepted (202), the order as it is then, or why not.
    command_route: dict[str, Any] = {
        "status_code": status.HTTP_202_ACCEPTED,
        "response_model": OrderView,
        "responses": {404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    }

    any_key = auth.dependency()
    ops_key = auth.dependency(ops_only=True)

    async def visible_view(order_id: UUID, principal: Principal, view: OrderView | None = None) -> OrderView | None:
        """The order as this key may see it (with its customer tracking token), or None; `view` when the
        caller has it already (a placement that just recorded the order)."""
        if view is None:
            try:
                view = await queries.order_view(order_id)
            except OrderNotFoundError:
                return None
        if not principal.may_see(view.channel):
            return None
        return view.model_copy(update={"tracking_token": auth.tracking_token(order_id)})

    def not_found(order_id: UUID) -> JSONResponse:
        return error_response(status.HTTP_404_NOT_FOUND, "order_not_found", f"No order {order_id}.")

    async def after_command(
        order_id: UUID, principal: Principal, command: Awaitable[None], conflict: str, explain: str
    ) -> OrderView | JSONResponse:
        """Runs a command on an order; the order as it is then, or 404, or 409 saying why not."""
        try:
            await command
        except OrderNotFoundError:
            return not_found(order_id)
        except ActionNotAllowedError as exc:
            return error_response(status.HTTP_409_CONFLICT, conflict, explain.format(exc))
        return await visible_view(order_id, principal) or not_found(order_id)

    # Before the routes below, so that /orders/stuck is not taken for an order id.
    for router in routers:
        app.include_router(router)

    @app.post(
        "/orders",
        operation_id="placeOrder",
        status_code=status.HTTP_201_CREATED,
        response_model=OrderView,
        responses={
            200: {"model": OrderView, "description": "The same order again (retry)"},
            409: {
                "model": ErrorBody,
                "description": "`request_in_progress`: the first request with this Idempotency-Key is still "
                "running; retry it later with the same key",
            },
            422: {"model": ErrorBody},
            503: {
                "model": ErrorBody,
                "description": "`unavailable`: a dependency does not answer, or the placement did not finish "
                "within PLACEMENT_DEADLINE_S; whether the order was placed is not known yet. Retry after "
                "`Retry-After` seconds with the same Idempotency-Key (or the same channel and external "
                "reference): the answer is then the order, placed once",
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
            },
        },
    )
    async def place_order(
        body: PlaceOrderRequest,
        response: Response,
        principal: Annotated[Principal, Depends(any_key)],
        idempotency_key: Annotated[PlainText | None, Header(min_length=1, max_length=200)] = None,
    ) -> OrderView | JSONResponse:
        """Places an order. Retrying with the same `Idempotency-Key` returns the same order; so does
        resubmitting the same channel + external reference. A channel key places its own channel's
        orders only. The answer carries the order's `tracking_token` for the customer."""
        if not principal.may_see(body.channel.value):
            raise forbidden(f"This key places {principal.channel} orders only.")
        # Only a key needs the body's fingerprint (serialising and hashing it is not free).
        fingerprint = _fingerprint(body) if idempotency_key else ""
        scope = body.channel.value
        if idempotency_key:
            earlier = await idempotency.begin(scope, idempotency_key, fingerprint)
            if earlier is not None:
                if earlier.fingerprint != fingerprint:
                    return error_response(
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        "idempotency_key_reused",
                        "This Idempotency-Key was used for a different request.",
                        [FieldError(field="Idempotency-Key", message="used with another body", type="conflict")],
                    )
                if earlier.state == "pending" or earlier.order_id is None:
                    return error_response(
                        status.HTTP_409_CONFLICT,
                        "request_in_progress",
                        "The first request with this key is still running.",
                    )
                response.status_code = status.HTTP_200_OK
                response.headers["Idempotent-Replayed"] = "true"
                return await visible_view(earlier.order_id, principal) or not_found(earlier.order_id)
        # The same id whichever way the order comes in (HTTP or the intake topic).
        placed = order_placed(body, order_id_for(body.channel, body.external_reference))
        try:
            # An upstream system must get an answer it can act on in a bounded time, also while the
            # database or the broker is down or slow: past the deadline the placement is given up
            # (rolled back, or committed already: the order id is derived from the channel and
            # reference, so a retry finds the order instead of placing a second one).
            async with asyncio.timeout(placement_deadline_s):
                result = await placement.place_once(placed, body.payment_token)
        except BaseException as exc:
            if idempotency_key:
                await idempotency.abandon(scope, idempotency_key)
            if isinstance(exc, TimeoutError):
                log.warning(
                    "placement past its deadline", order_id=str(placed.order_id), deadline_s=placement_deadline_s
                )
                return error_response(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    "unavailable",
                    f"The order could not be placed within {placement_deadline_s:g} s; it may or may not have "
                    "been placed. Retry with the same Idempotency-Key, or the same channel and external reference.",
                    headers={"Retry-After": "1"},
                )
            raise
        if idempotency_key:
            await idempotency.complete(scope, idempotency_key, fingerprint, result.order_id)
        if not result.created:
            response.status_code = status.HTTP_200_OK
        response.headers["Location"] = f"/orders/{result.order_id}"
        # A new order's view is made from what the placement recorded, without reading it back.
        recorded = order_view(result.placed.order, result.placed.timeline) if result.placed is not None else None
        return await visible_view(result.order_id, principal, recorded) or not_found(result.order_id)

    @app.get(
        "/orders/{order_id}", operation_id="getOrder", response_model=OrderView, responses={404: {"model": ErrorBody}}
    )
    async def get_order(order_id: UUID, principal: Annotated[Principal, Depends(any_key)]) -> OrderView | JSONResponse:
        """The order's status and the timeline of what happened to it."""
        return await visible_view(order_id, principal) or not_found(order_id)

    @app.get("/orders/{order_id}/saga", response_model=SagaView, responses={404: {"model": ErrorBody}})
    async def get_saga(order_id: UUID, _: Annotated[Principal, Depends(ops_key)]) -> SagaView | JSONResponse:
        """Where the order's saga stands: the step it waits on, the command it sent, how many times, and
        the deadline after which it re-sends or compensates (ops). None once it waits on nothing."""
        try:
            return await queries.saga_view(order_id)
        except OrderNotFoundError:
            return not_found(order_id)

    @app.post(
        "/orders/{order_id}/cancel",
        operation_id="cancelOrder",
        **command_route,
    )
    async def cancel_order(
        order_id: UUID, body: CancelOrderRequest, principal: Annotated[Principal, Depends(any_key)]
    ) -> OrderView | JSONResponse:
        """Cancels an order until part of it has shipped. What was done is undone in reverse order
        (shipments not yet left are cancelled, then refund, then stock release); the order ends
        `cancelled`, or goes on when a warehouse shipped meanwhile (`OrderCancellationRefused`).
        409 when it is too late."""
        if await visible_view(order_id, principal) is None:
            return not_found(order_id)
        return await after_command(
            order_id,
            principal,
            commands.cancel(order_id, body.reason, body.requested_by),
            "cancel_not_allowed",
            "The order cannot be cancelled: {}.",
        )

    @app.post(
        "/orders/{order_id}/actions",
        operation_id="takeOperatorAction",
        **command_route,
    )
    async def operator_action(
        order_id: UUID, body: OperatorActionRequest, principal: Annotated[Principal, Depends(ops_key)]
    ) -> OrderView | JSONResponse:
        """For an order in `needs_attention`: retry the parked step, skip a failed compensation, or
        resolve the order by hand. For a failed partial refund (`refund`, or the order's only one): retry
        it, skip it, or resolve it (settled outside the system); the order's status does not change.
        The action is recorded in the order's timeline."""
        return await after_command(
            order_id,
            principal,
            commands.operator_action(order_id, body.action, body.operator, body.note, body.refund),
            "action_not_allowed",
            "{}",
        )

    @app.post(
        "/orders/{order_id}/hold",
        operation_id="holdOrder",
        **command_route,
    )
    async def hold_order(
        order_id: UUID, body: HoldRequest, principal: Annotated[Principal, Depends(ops_key)]
    ) -> OrderView | JSONResponse:
        """Puts an order on hold before its payment: allowed while it is `placed` (it goes `on_hold`
        when its stock is reserved, instead of capturing). 409 once the capture is sent."""
        return await after_command(
            order_id,
            principal,
            commands.put_on_hold(order_id, body.reason, body.held_by),
            "hold_not_allowed",
            "The order cannot be put on hold: {}.",
        )

    @app.post(
        "/orders/{order_id}/release-hold",
        operation_id="releaseHold",
        **command_route,
    )
    async def release_hold(
        order_id: UUID, body: ReleaseHoldRequest, principal: Annotated[Principal, Depends(ops_key)]
    ) -> OrderView | JSONResponse:
        """Releases an order's hold: an order `on_hold` has its payment captured and goes on; a hold
        placed before the stock was reserved is simply cleared. 409 when the order is not held."""
        return await after_command(
            order_id,
            principal,
            commands.release_hold(order_id, body.released_by, body.note),
            "release_not_allowed",
            "The hold cannot be released: {}.",
        )

    return app
