"""Returns through order-service's API: the customer (with the order's tracking token) or ops asks to send
delivered units back. The saga then has fulfilment authorise the return; the warehouse receives and inspects
it (fulfilment-service's API); the saga restocks what can be sold again and refunds the returned lines."""

from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from oms_events.values import PlainText, Quantity, Sku
from oms_runtime.http_api import API_KEY_HEADER, AuthError, OptionalKey, PreBodyCheck, error_response
from order_service.domain.order import ActionNotAllowedError
from order_service.entrypoints.auth import Authenticator, Principal
from order_service.entrypoints.schemas import ErrorBody, FieldError
from order_service.handlers import OrderCommands, OrderNotFoundError, OrderQueries
from order_service.views import ReturnAccepted, ReturnLineView


class ReturnLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Sku
    quantity: Quantity


class ReturnRequest(BaseModel):
    """Delivered units to send back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lines: list[ReturnLine] = Field(min_length=1, max_length=200)
    reason: PlainText = Field(min_length=1, max_length=500)


class CustomerOrKey(OptionalKey, PreBodyCheck):
    """The order's tracking token or a valid key, checked before the body is read; 404 without either
    (the answer for an order that does not exist, so ids cannot be probed). Which channel a key may see
    needs the order, and is the route's to check."""

    answers = frozenset({status.HTTP_404_NOT_FOUND})

    def __init__(self, auth: Authenticator) -> None:
        super().__init__(auth)
        self._tokens = auth

    async def before_body(self, request: Request) -> None:
        try:
            order_id = UUID(str(request.path_params.get("order_id")))
        except ValueError:
            return  # the route's own validation names the bad id
        token = request.query_params.get("token")
        if self._tokens.principal(request.headers.get(API_KEY_HEADER)) is None and not (
            self._tokens.valid_tracking_token(order_id, token)
        ):
            raise AuthError(status.HTTP_404_NOT_FOUND, "order_not_found", f"No order {order_id}.")


def return_router(commands: OrderCommands, queries: OrderQueries, auth: Authenticator) -> APIRouter:
    router = APIRouter()
    maybe_key = CustomerOrKey(auth)

    @router.post(
        "/orders/{order_id}/returns",
        operation_id="requestReturn",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ReturnAccepted,
        responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )
    async def request_return(
        order_id: UUID,
        body: ReturnRequest,
        token: Annotated[PlainText | None, Query(max_length=100, description="The order's tracking token")] = None,
        principal: Annotated[Principal | None, Depends(maybe_key)] = None,
    ) -> ReturnAccepted | JSONResponse:
        """Asks to return delivered units: the customer with the order's tracking token, or an ops or the
        order's channel key. `409 return_not_allowed` when a line was not delivered or is returned already."""
        not_found = error_response(status.HTTP_404_NOT_FOUND, "order_not_found", f"No order {order_id}.")
        try:
            view = await queries.order_view(order_id)
        except OrderNotFoundError:
            return not_found
        by_token = auth.valid_tracking_token(order_id, token)
        if not by_token and (principal is None or not principal.may_see(view.channel)):
            return not_found  # the same answer as "no such order": ids cannot be probed
        wanted: dict[str, int] = {}
        for i, line in enumerate(body.lines):
            if line.sku in wanted:
                return error_response(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "validation_failed",
                    f"Invalid fields: lines.{i}.sku",
                    [FieldError(field=f"lines.{i}.sku", message=f"{line.sku} is listed twice", type="value_error")],
                )
            wanted[line.sku] = line.quantity
        return_id = uuid4()
        requested_by = principal.name if principal is not None and not by_token else "customer"
        try:
            await commands.request_return(order_id, return_id, wanted, body.reason, requested_by)
        except ActionNotAllowedError as exc:
            return error_response(status.HTTP_409_CONFLICT, "return_not_allowed", f"The return is not possible: {exc}.")
        order = await queries.order_view(order_id)
        [accepted] = [r for r in order.returns if r.return_id == return_id]
        return ReturnAccepted(
            order_id=order_id,
            return_id=return_id,
            status=accepted.status,
            lines=[ReturnLineView.model_validate(line.model_dump()) for line in accepted.lines],
        )

    return router
