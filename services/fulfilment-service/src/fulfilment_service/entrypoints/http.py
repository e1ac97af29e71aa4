"""The HTTP API of fulfilment-service: the warehouse's pick lists and steps, and the carriers' webhook.

Keys (`X-API-Key`, oms_runtime.http_api): `warehouse` keys (and ops) use the warehouse routes; `carrier`
keys (and ops) post carrier updates, which may instead be signed with the carrier's HMAC secret
(`X-Carrier-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>`). Errors use the one error body.
"""

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, FastAPI, Path, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from fulfilment_service.domain.carriers import KNOWN_CARRIERS
from fulfilment_service.domain.returns import InspectionError, Return, ReturnStateError, ReturnStatus
from fulfilment_service.domain.shipment import PickError, Shipment, ShipmentStateError, ShipmentStatus
from fulfilment_service.handlers import (
    FulfilmentOperations,
    ReturnNotFoundError,
    ShipmentNotFoundError,
    WarehouseMode,
)
from oms_events.messages import CarrierUpdate
from oms_events.values import Allocation, AwareInstant, Parcel, PlainText, Sku, WarehouseId
from oms_runtime.http_api import (
    API_KEY_HEADER,
    DEFAULT_MAX_BODY_BYTES,
    ApiKeyAuthenticator,
    ErrorBody,
    FieldError,
    PreBodyCheck,
    Principal,
    Role,
    ServiceApi,
    error_response,
    forbidden,
    same_secret,
    unauthenticated,
)
from oms_runtime.messaging import MessageContext

SIGNATURE_HEADER = "X-Carrier-Signature"


class ShipmentView(BaseModel):
    shipment_id: UUID
    order_id: UUID
    warehouse_id: str
    status: str
    delivery_method: str | None
    lines: list[Allocation]
    picked: list[Allocation]
    short: list[Allocation]
    parcels: list[Parcel]
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    estimated_delivery: date | None
    location: str | None
    updated_at: datetime | None = None


class PickLists(BaseModel):
    warehouse_id: str
    mode: str
    pick_lists: list[ShipmentView]


class OrderShipments(BaseModel):
    order_id: UUID
    shipments: list[ShipmentView]


class PickedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: int = Field(ge=0, le=10_000, description="Units found on the shelf (0: none)")


class ConfirmPicksRequest(BaseModel):
    """Units found per sku. A sku of the pick list that is not named was not found at all (a short pick)."""

    model_config = ConfigDict(extra="forbid")

    lines: list[PickedLine] = Field(max_length=200)


class PackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parcels: list[Parcel] = Field(min_length=1, max_length=50)


class ReturnView(BaseModel):
    return_id: UUID
    order_id: UUID
    status: str
    lines: list[Allocation] = Field(description="The units coming back, each with the warehouse it left from")
    sellable: list[Allocation]
    unsellable: list[Allocation]


class ReturnList(BaseModel):
    returns: list[ReturnView]


class InspectedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    warehouse_id: WarehouseId
    sellable: int = Field(ge=0, le=10_000, description="Units of this line that can be sold again")


class InspectReturnRequest(BaseModel):
    """Per returned line, how many units can be sold again; a line not named has none."""

    model_config = ConfigDict(extra="forbid")

    lines: list[InspectedLine] = Field(max_length=200)


def _return_view(returned: Return) -> ReturnView:
    assert returned.order_id is not None
    assert returned.status is not None
    return ReturnView(
        return_id=returned.return_id,
        order_id=returned.order_id,
        status=returned.status.value,
        lines=returned.lines,
        sellable=returned.sellable,
        unsellable=returned.unsellable,
    )


class CarrierStatusUpdate(BaseModel):
    """A carrier's status report on one parcel."""

    model_config = ConfigDict(extra="ignore")

    event_id: PlainText | None = Field(
        default=None, min_length=1, max_length=200, description="The carrier's id of this update; repeats are ignored"
    )
    tracking_number: PlainText = Field(min_length=1, max_length=40)
    status: Literal["in_transit", "out_for_delivery", "delivered", "delivery_failed", "returned_to_sender"]
    occurred_at: AwareInstant = Field(description="When the carrier saw it")
    location: PlainText | None = Field(default=None, max_length=200)
    reason: PlainText | None = Field(default=None, max_length=500, description="Why delivery failed or it went back")

    def update_id(self, carrier: str) -> str:
        """The carrier's event id, or a digest of what the update says (the same report twice is one)."""
        if self.event_id:
            return f"{carrier}:{self.event_id}"
        said = "|".join((carrier, self.tracking_number, self.status, self.occurred_at.isoformat(), self.location or ""))
        return f"{carrier}:sha256:{hashlib.sha256(said.encode()).hexdigest()}"


class CarrierUpdateResult(BaseModel):
    shipment_id: UUID
    status: str = Field(description="The shipment's status after the update")
    duplicate: bool = Field(description="The same update was received before: nothing changed")
    superseded: bool = Field(description="Recorded, but older than the shipment's status: nothing changed")


def shipment_view(row: Mapping[str, Any]) -> ShipmentView:
    return ShipmentView.model_validate(dict(row))


def _view_of(shipment: Shipment) -> ShipmentView:
    assert shipment.order_id is not None
    assert shipment.status is not None
    return ShipmentView(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        warehouse_id=shipment.warehouse_id,
        status=shipment.status.value,
        delivery_method=shipment.delivery_method.value if shipment.delivery_method else None,
        lines=shipment.lines,
        picked=shipment.picked,
        short=shipment.short,
        parcels=shipment.parcels,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
        estimated_delivery=shipment.estimated_delivery,
        location=shipment.location,
    )


_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (see API_KEYS)")
# A scheme name of its own: under the default one ("APIKeyHeader") it would replace X-API-Key in the OpenAPI document.
_signature = APIKeyHeader(
    name=SIGNATURE_HEADER,
    scheme_name="CarrierSignature",
    auto_error=False,
    description="sha256=<hex HMAC of the body>",
)
CarrierName = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]


class CarrierCaller(PreBodyCheck):
    """Who posts a carrier update: a carrier (or ops) key, or the carrier's HMAC signature of the raw body.

    Before the body is read: a valid key, or a signature header for a carrier that has a secret (anything
    else is refused without reading the body); the signature itself is checked against the body after.
    """

    def __init__(self, auth: ApiKeyAuthenticator, secrets: Mapping[str, bytes]) -> None:
        self._auth = auth
        self._secrets = secrets

    def _by_key(self, key: str | None) -> bool:
        principal = self._auth.principal(key)
        if principal is None:
            return False
        if principal.role not in (Role.CARRIER, Role.OPS):
            raise forbidden("This needs a key of role carrier or ops.")
        return True

    async def before_body(self, request: Request) -> None:
        if self._by_key(request.headers.get(API_KEY_HEADER)):
            return
        name = str(request.path_params.get("carrier", "")).upper()
        if not (request.headers.get(SIGNATURE_HEADER) and name in self._secrets):
            raise unauthenticated()

    async def __call__(
        self,
        carrier: CarrierName,
        request: Request,
        key: Annotated[str | None, Depends(_api_key)] = None,
        signature: Annotated[str | None, Depends(_signature)] = None,
    ) -> str:
        name = carrier.upper()
        if self._by_key(key):
            return name
        secret = self._secrets.get(name)
        if signature and secret is not None:
            expected = "sha256=" + hmac.new(secret, await request.body(), hashlib.sha256).hexdigest()
            if same_secret(signature.strip(), expected):
                return name
        raise unauthenticated()


def create_app(
    operations: FulfilmentOperations,
    auth: ApiKeyAuthenticator,
    *,
    modes: Callable[[str], WarehouseMode],
    carrier_secrets: Mapping[str, str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    app = ServiceApi(
        title="OMS fulfilment-service",
        description="Pick lists, picking, packing and shipping per warehouse; carriers' status updates.",
        max_body_bytes=max_body_bytes,
    )
    warehouse_key = auth.dependency(roles=frozenset({Role.WAREHOUSE}))
    handlers = operations.handlers
    secrets = {name.upper(): secret.encode() for name, secret in carrier_secrets.items()}

    def not_found(shipment_id: UUID | str) -> JSONResponse:
        return error_response(status.HTTP_404_NOT_FOUND, "shipment_not_found", f"No shipment {shipment_id}.")

    async def step(
        shipment_id: UUID, use_case: Callable[[MessageContext], Awaitable[Shipment]]
    ) -> ShipmentView | JSONResponse:
        try:
            shipment = await operations.run(use_case)
        except ShipmentNotFoundError:
            return not_found(shipment_id)
        except ShipmentStateError as exc:
            return error_response(status.HTTP_409_CONFLICT, "transition_not_allowed", str(exc))
        return _view_of(shipment)

    errors: dict[int | str, dict[str, Any]] = {
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
    }

    # A warehouse key limited to one warehouse (API_KEYS `warehouse_id`) sees and works that warehouse's
    # shipments and returns only; another warehouse's is refused with 403 saying why.
    async def own_shipment(
        shipment_id: UUID, principal: Principal, use_case: Callable[[MessageContext], Awaitable[Shipment]]
    ) -> ShipmentView | JSONResponse:
        if principal.warehouse_id is not None:
            row = await operations.read(lambda session: handlers.repository.view(session, shipment_id))
            if row is None:
                return not_found(shipment_id)
            principal.require_warehouse(str(row["warehouse_id"]), f"shipment {shipment_id}")
        return await step(shipment_id, use_case)

    def require_return(principal: Principal, returned: ReturnView) -> None:
        """A return may bring units back to several warehouses: a limited key works those with units for it."""
        if principal.warehouse_id is not None and not any(
            principal.may_act_for(line.warehouse_id) for line in returned.lines
        ):
            others = ", ".join(sorted({line.warehouse_id for line in returned.lines}))
            principal.require_warehouse(others, f"return {returned.return_id}")

    async def own_return(return_id: UUID, principal: Principal) -> JSONResponse | None:
        if principal.warehouse_id is None:
            return None
        row = await operations.read(lambda session: handlers.returns.view(session, return_id))
        if row is None:
            return return_not_found(return_id)
        require_return(principal, ReturnView.model_validate(row))
        return None

    @app.get(
        "/warehouses/{warehouse_id}/pick-lists",
        operation_id="listPickLists",
        response_model=PickLists,
        responses={403: {"model": ErrorBody}},
    )
    async def pick_lists(
        warehouse_id: WarehouseId,
        principal: Annotated[Principal, Depends(warehouse_key)],
        status_: Annotated[list[ShipmentStatus] | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> PickLists:
        """Shipments to work on in one warehouse, oldest first: `created` and `picking` unless `status` says."""
        principal.require_warehouse(warehouse_id)
        wanted = [s.value for s in status_ or (ShipmentStatus.CREATED, ShipmentStatus.PICKING)]
        rows = await operations.read(
            lambda session: handlers.repository.pick_lists(session, warehouse_id, wanted, limit)
        )
        return PickLists(
            warehouse_id=warehouse_id, mode=modes(warehouse_id).value, pick_lists=[shipment_view(r) for r in rows]
        )

    @app.get("/shipments/{shipment_id}", operation_id="getShipment", response_model=ShipmentView, responses=errors)
    async def get_shipment(
        shipment_id: UUID, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ShipmentView | JSONResponse:
        row = await operations.read(lambda session: handlers.repository.view(session, shipment_id))
        if row is None:
            return not_found(shipment_id)
        principal.require_warehouse(str(row["warehouse_id"]), f"shipment {shipment_id}")
        return shipment_view(row)

    @app.get("/orders/{order_id}/shipments", operation_id="listOrderShipments", response_model=OrderShipments)
    async def order_shipments(
        order_id: UUID, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> OrderShipments:
        """The order's shipments (a key limited to one warehouse: that warehouse's)."""
        rows = await operations.read(lambda session: handlers.repository.of_order(session, order_id))
        views = [shipment_view(r) for r in rows]
        return OrderShipments(order_id=order_id, shipments=[v for v in views if principal.may_act_for(v.warehouse_id)])

    @app.post(
        "/shipments/{shipment_id}/picking", operation_id="startPicking", response_model=ShipmentView, responses=errors
    )
    async def start_picking(
        shipment_id: UUID, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ShipmentView | JSONResponse:
        return await own_shipment(shipment_id, principal, lambda ctx: handlers.start_picking(ctx, shipment_id))

    @app.post(
        "/shipments/{shipment_id}/picks",
        operation_id="confirmPicks",
        response_model=ShipmentView,
        responses={**errors, 422: {"model": ErrorBody}},
    )
    async def confirm_picks(
        shipment_id: UUID, body: ConfirmPicksRequest, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ShipmentView | JSONResponse:
        """Confirms what was found. Short picks go on as a partial shipment; nothing found fails the shipment."""
        found: dict[str, int] = {}
        for i, line in enumerate(body.lines):
            if line.sku in found:
                return _invalid(f"lines.{i}.sku", f"{line.sku} is listed twice")
            found[line.sku] = line.quantity
        try:
            return await own_shipment(
                shipment_id, principal, lambda ctx: handlers.confirm_picks(ctx, shipment_id, found)
            )
        except PickError as exc:
            index = next(i for i, line in enumerate(body.lines) if line.sku == exc.field)
            return _invalid(f"lines.{index}", str(exc))

    @app.post(
        "/shipments/{shipment_id}/pack",
        operation_id="packShipment",
        response_model=ShipmentView,
        responses={**errors, 422: {"model": ErrorBody}},
    )
    async def pack(
        shipment_id: UUID, body: PackRequest, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ShipmentView | JSONResponse:
        return await own_shipment(shipment_id, principal, lambda ctx: handlers.pack(ctx, shipment_id, body.parcels))

    @app.post(
        "/shipments/{shipment_id}/ship", operation_id="shipShipment", response_model=ShipmentView, responses=errors
    )
    async def ship(
        shipment_id: UUID, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ShipmentView | JSONResponse:
        """Hands the packed shipment to its carrier: tracking number and estimated delivery as of now."""
        return await own_shipment(shipment_id, principal, lambda ctx: handlers.ship(ctx, shipment_id))

    def return_not_found(return_id: UUID) -> JSONResponse:
        return error_response(status.HTTP_404_NOT_FOUND, "return_not_found", f"No return {return_id}.")

    async def return_step(
        return_id: UUID, use_case: Callable[[MessageContext], Awaitable[Return]]
    ) -> ReturnView | JSONResponse:
        try:
            returned = await operations.run(use_case)
        except ReturnNotFoundError:
            return return_not_found(return_id)
        except ReturnStateError as exc:
            return error_response(status.HTTP_409_CONFLICT, "transition_not_allowed", str(exc))
        return _return_view(returned)

    @app.get("/returns", operation_id="listReturns", response_model=ReturnList)
    async def list_returns(
        principal: Annotated[Principal, Depends(warehouse_key)],
        status_: Annotated[list[ReturnStatus] | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> ReturnList:
        """Returns to work on, oldest first: `authorised` (expected) and `received` unless `status` says."""
        wanted = [s.value for s in status_ or (ReturnStatus.AUTHORISED, ReturnStatus.RECEIVED)]
        rows = await operations.read(lambda session: handlers.returns.by_status(session, wanted, limit))
        views = [ReturnView.model_validate(r) for r in rows]
        # A key limited to one warehouse: the returns with units coming back to it.
        return ReturnList(
            returns=[v for v in views if any(principal.may_act_for(line.warehouse_id) for line in v.lines)]
        )

    @app.get("/returns/{return_id}", operation_id="getReturn", response_model=ReturnView, responses=errors)
    async def get_return(
        return_id: UUID, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ReturnView | JSONResponse:
        row = await operations.read(lambda session: handlers.returns.view(session, return_id))
        if row is None:
            return return_not_found(return_id)
        view = ReturnView.model_validate(row)
        require_return(principal, view)
        return view

    @app.post("/returns/{return_id}/receive", operation_id="receiveReturn", response_model=ReturnView, responses=errors)
    async def receive_return(
        return_id: UUID, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ReturnView | JSONResponse:
        """The parcel with the returned units arrived."""
        refused = await own_return(return_id, principal)
        if refused is not None:
            return refused
        return await return_step(return_id, lambda ctx: handlers.receive_return(ctx, return_id, principal.name))

    @app.post(
        "/returns/{return_id}/inspect",
        operation_id="inspectReturn",
        response_model=ReturnView,
        responses={**errors, 422: {"model": ErrorBody}},
    )
    async def inspect_return(
        return_id: UUID, body: InspectReturnRequest, principal: Annotated[Principal, Depends(warehouse_key)]
    ) -> ReturnView | JSONResponse:
        """Says per line how many units can be sold again; the saga then restocks those and refunds the return."""
        refused = await own_return(return_id, principal)
        if refused is not None:
            return refused
        sellable: dict[tuple[str, str], int] = {}
        for i, line in enumerate(body.lines):
            principal.require_warehouse(line.warehouse_id, f"lines.{i} ({line.sku})")
            key = (line.sku, line.warehouse_id)
            if key in sellable:
                return _invalid(f"lines.{i}.sku", f"{line.sku} from {line.warehouse_id} is listed twice")
            sellable[key] = line.sellable
        try:
            return await return_step(
                return_id, lambda ctx: handlers.inspect_return(ctx, return_id, sellable, principal.name)
            )
        except InspectionError as exc:
            index = next(i for i, line in enumerate(body.lines) if (line.sku, line.warehouse_id) == exc.line)
            return _invalid(f"lines.{index}", str(exc))

    carrier_caller = CarrierCaller(auth, secrets)

    @app.post(
        "/carriers/{carrier}/updates",
        operation_id="receiveCarrierUpdate",
        response_model=CarrierUpdateResult,
        responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    )
    async def carrier_update(
        body: CarrierStatusUpdate, carrier_name: Annotated[str, Depends(carrier_caller)]
    ) -> CarrierUpdateResult | JSONResponse:
        """A carrier's status update. The same update twice has one effect; an update older than the shipment's
        status (e.g. "in transit" after "delivered") is recorded but does not move it back."""
        if carrier_name not in KNOWN_CARRIERS:
            return error_response(status.HTTP_404_NOT_FOUND, "carrier_not_found", f"No carrier {carrier_name}.")

        async def use_case(ctx: MessageContext) -> tuple[Shipment, list[Any]]:
            return await handlers.carrier_update(
                ctx,
                carrier_name,
                body.tracking_number,
                ShipmentStatus(body.status),
                reported_at=body.occurred_at,
                update_id=body.update_id(carrier_name),
                location=body.location,
                reason=body.reason,
            )

        try:
            shipment, events = await operations.run(use_case)
        except ShipmentNotFoundError:
            return error_response(
                status.HTTP_404_NOT_FOUND, "shipment_not_found", f"No {carrier_name} shipment {body.tracking_number}."
            )
        except ShipmentStateError as exc:
            return error_response(status.HTTP_409_CONFLICT, "transition_not_allowed", str(exc))
        recorded = events[0] if events else None
        assert shipment.status is not None
        return CarrierUpdateResult(
            shipment_id=shipment.shipment_id,
            status=shipment.status.value,
            duplicate=recorded is None,
            superseded=isinstance(recorded, CarrierUpdate) and recorded.superseded,
        )

    return app


def _invalid(field: str, message: str) -> JSONResponse:
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "validation_failed",
        f"Invalid fields: {field}",
        [FieldError(field=field, message=message, type="value_error")],
    )


__all__ = ["SIGNATURE_HEADER", "CarrierStatusUpdate", "create_app"]
