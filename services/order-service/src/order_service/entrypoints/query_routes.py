"""Read-side HTTP routes: order search, stuck orders for ops, and tracking.

Include this router in the app BEFORE the `/orders/{order_id}` route, or `/orders/stuck` is taken
for an order id. Errors use the API's structured body (`ErrorBody`) even without the app's handlers:
bad parameters are a 422 naming each field, a failing database a 503; never a 500.
"""

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import status as http_status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from oms_events.values import Channel, Instant, PlainText
from oms_runtime.logging import get_logger
from order_service.entrypoints.auth import Authenticator, AuthError, Principal, forbidden
from order_service.entrypoints.errors import error_response, field_name
from order_service.entrypoints.schemas import ErrorBody, FieldError
from order_service.queries import MAX_PAGE, MAX_STUCK, InvalidQueryError, OrderSearch
from order_service.query_views import OrderPage, OrderStatusName, StuckOrders, TrackingView

log = get_logger(__name__)


def _invalid(fields: list[FieldError]) -> JSONResponse:
    names = ", ".join(f.field for f in fields)
    return error_response(
        http_status.HTTP_422_UNPROCESSABLE_CONTENT, "validation_failed", f"Invalid fields: {names}", fields
    )


class _StructuredErrorsRoute(APIRoute):
    """Turns validation and dependency failures of these routes into the API's error bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _invalid(
                    [
                        FieldError(field=field_name(e["loc"], "query"), message=e["msg"], type=e["type"])
                        for e in exc.errors()
                    ]
                )
            except InvalidQueryError as exc:
                return _invalid([FieldError(field=exc.field, message=exc.message, type="value_error")])
            except AuthError as exc:
                return error_response(exc.status_code, exc.error, str(exc.detail))
            except StarletteHTTPException:
                raise
            except Exception:
                log.exception("query failed", path=request.url.path)
                return error_response(
                    http_status.HTTP_503_SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The service cannot answer now; retry later.",
                )

        return handle


def query_router(search: OrderSearch, auth: Authenticator) -> APIRouter:
    router = APIRouter(route_class=_StructuredErrorsRoute, tags=["queries"])
    any_key = auth.dependency()
    ops_key = auth.dependency(ops_only=True)
    maybe_key = auth.optional_dependency()
    errors: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 503: {"model": ErrorBody}}

    @router.get("/orders", operation_id="searchOrders", response_model=OrderPage, responses=errors)
    async def search_orders(
        customer_id: Annotated[PlainText | None, Query(min_length=1, max_length=64)] = None,
        status: Annotated[OrderStatusName | None, Query()] = None,
        channel: Annotated[Channel | None, Query()] = None,
        placed_from: Annotated[Instant | None, Query(description="Inclusive; UTC when no zone is given")] = None,
        placed_to: Annotated[Instant | None, Query(description="Exclusive; UTC when no zone is given")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[PlainText | None, Query(min_length=1, max_length=200)] = None,
        principal: Annotated[Principal | None, Depends(any_key)] = None,
    ) -> OrderPage:
        """Orders matching every given filter, newest first. Follow `next_cursor` for the next page.
        A channel key sees its own channel's orders only."""
        assert principal is not None
        if not principal.is_ops:
            if channel is not None and channel.value != principal.channel:
                raise forbidden(f"This key reads {principal.channel} orders only.")
            channel = Channel(principal.channel or "")
        return await search.search(
            customer_id=customer_id,
            status=status,
            channel=channel.value if channel is not None else None,
            placed_from=placed_from,
            placed_to=placed_to,
            limit=limit,
            cursor=cursor,
        )

    @router.get("/orders/stuck", operation_id="listStuckOrders", response_model=StuckOrders, responses=errors)
    async def stuck_orders(
        older_than_s: Annotated[float, Query(ge=0, le=365 * 24 * 3600)] = 900,
        limit: Annotated[int, Query(ge=1, le=MAX_STUCK)] = 100,
        principal: Annotated[Principal | None, Depends(ops_key)] = None,
    ) -> StuckOrders:
        """Open orders with no progress for `older_than_s` seconds, and every order that needs an operator;
        oldest first."""
        return await search.stuck(timedelta(seconds=older_than_s), limit)

    @router.get(
        "/orders/{order_id}/tracking",
        operation_id="getOrderTracking",
        response_model=TrackingView,
        responses={404: {"model": ErrorBody}, **errors},
    )
    async def order_tracking(
        order_id: UUID,
        token: Annotated[PlainText | None, Query(max_length=100, description="The order's tracking token")] = None,
        principal: Annotated[Principal | None, Depends(maybe_key)] = None,
    ) -> TrackingView | JSONResponse:
        """The order's status and shipments: carrier, tracking number and link, estimated delivery.
        Customers use the order's tracking token; channel and ops keys work too."""
        view = await search.tracking(order_id)
        allowed = view is not None and (
            auth.valid_tracking_token(order_id, token) or (principal is not None and principal.may_see(view.channel))
        )
        if view is None or not allowed:
            # The same answer for "no such order" and "not yours": ids cannot be probed.
            return error_response(http_status.HTTP_404_NOT_FOUND, "order_not_found", f"No order {order_id}.")
        return view

    return router
