"""The HTTP API of inventory-service (FastAPI). Every error is a structured body naming the field; never a 500.

Keys (X-API-Key, oms_runtime.http_api): `ops` may do everything; `warehouse` keys post goods receipts,
adjustments and purchase-order receipts and read; `channel` keys read availability only.
"""

from collections.abc import Sequence
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, status
from fastapi.responses import JSONResponse, Response

from inventory_service.adapters.availability_view import AvailabilityView
from inventory_service.adapters.stock_repository import PurchaseOrder, StockLevel, Warehouse
from inventory_service.availability import rebuild_view
from inventory_service.commands import (
    DuplicateReceiptError,
    InventoryCommands,
    PurchaseOrderClosedError,
    PurchaseOrderNotFoundError,
    ReservationNotExpirableError,
    ReservationNotFoundError,
    WarehouseNotFoundError,
)
from inventory_service.domain.replenishment import PolicyError, ReplenishmentPolicy
from inventory_service.entrypoints import schemas
from inventory_service.ledger import StockLevelError, UnknownStockError
from inventory_service.queries import InventoryQueries
from oms_events import MessageRegistry
from oms_events.values import Sku, WarehouseId
from oms_runtime.db import Database
from oms_runtime.http_api import (
    DEFAULT_MAX_BODY_BYTES,
    ApiKeyAuthenticator,
    ErrorBody,
    FieldError,
    Principal,
    Role,
    ServiceApi,
    error_response,
)

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


def _level(level: StockLevel) -> schemas.LevelView:
    return schemas.LevelView(
        sku=level.sku,
        warehouse_id=level.warehouse_id,
        on_hand=level.on_hand,
        reserved=level.reserved,
        available=level.available,
        safety_stock=level.safety_stock,
    )


def _po(order: PurchaseOrder) -> schemas.PurchaseOrderView:
    return schemas.PurchaseOrderView(**vars(order))


def _policy(policy: ReplenishmentPolicy) -> schemas.PolicyView:
    return schemas.PolicyView(**vars(policy))


def _not_found(error: str, message: str) -> JSONResponse:
    return error_response(status.HTTP_404_NOT_FOUND, error, message)


def create_app(
    commands: InventoryCommands,
    queries: InventoryQueries,
    view: AvailabilityView,
    db: Database,
    registry: MessageRegistry,
    auth: ApiKeyAuthenticator,
    routers: Sequence[APIRouter] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    app = ServiceApi(
        title="OMS inventory-service",
        description="Warehouses, stock per sku per warehouse, reservations, backorders and replenishment.",
        responses=_ERRORS,
        max_body_bytes=max_body_bytes,
    )

    ops = Depends(auth.dependency(ops_only=True))
    warehouse = Depends(auth.dependency(roles=frozenset({Role.WAREHOUSE})))
    shop = Depends(auth.dependency(roles=frozenset({Role.WAREHOUSE, Role.CHANNEL})))

    def stock_errors(exc: Exception) -> JSONResponse:
        if isinstance(exc, WarehouseNotFoundError):
            return _not_found("warehouse_not_found", f"No warehouse {exc}.")
        if isinstance(exc, UnknownStockError):
            return _not_found("stock_not_found", str(exc))
        if isinstance(exc, StockLevelError):
            return error_response(status.HTTP_409_CONFLICT, "insufficient_stock", str(exc))
        raise exc

    # ------------------------------------------------------------------ warehouses

    @app.get(
        "/warehouses",
        operation_id="listWarehouses",
        response_model=list[schemas.WarehouseView],
        dependencies=[warehouse],
    )
    async def list_warehouses() -> list[schemas.WarehouseView]:
        return [schemas.WarehouseView(**vars(w)) for w in await queries.warehouses()]

    @app.put(
        "/warehouses/{warehouse_id}",
        operation_id="putWarehouse",
        response_model=schemas.WarehouseView,
        dependencies=[ops],
    )
    async def put_warehouse(
        warehouse_id: WarehouseId,
        body: schemas.WarehouseRequest,
    ) -> schemas.WarehouseView:
        found = Warehouse(warehouse_id, body.name, body.location, body.country, body.latitude, body.longitude)
        await commands.put_warehouse(found)
        return schemas.WarehouseView(**vars(found))

    @app.get(
        "/warehouses/{warehouse_id}/stock",
        operation_id="getWarehouseStock",
        response_model=schemas.WarehouseStockView,
        dependencies=[warehouse],
    )
    async def warehouse_stock(warehouse_id: WarehouseId) -> schemas.WarehouseStockView | JSONResponse:
        levels = await queries.warehouse_levels(warehouse_id)
        if levels is None:
            return _not_found("warehouse_not_found", f"No warehouse {warehouse_id}.")
        return schemas.WarehouseStockView(warehouse_id=warehouse_id, levels=[_level(lvl) for lvl in levels])

    # ------------------------------------------------------------------ stock

    @app.get("/stock/{sku}", operation_id="getSkuStock", response_model=schemas.SkuStockView, dependencies=[warehouse])
    async def sku_stock(sku: Sku) -> schemas.SkuStockView | JSONResponse:
        levels = await queries.sku_levels(sku)
        if not levels:
            return _not_found("stock_not_found", f"No stock of {sku} in any warehouse.")
        return schemas.SkuStockView(
            sku=sku,
            on_hand=sum(lvl.on_hand for lvl in levels),
            reserved=sum(lvl.reserved for lvl in levels),
            available=sum(lvl.available for lvl in levels),
            warehouses=[_level(lvl) for lvl in levels],
        )

    @app.post(
        "/stock/adjustments",
        operation_id="adjustStock",
        response_model=schemas.LevelView,
        status_code=status.HTTP_201_CREATED,
    )
    async def adjust(
        body: schemas.AdjustmentRequest,
        principal: Annotated[Principal, Depends(auth.dependency(roles=frozenset({Role.WAREHOUSE})))],
    ) -> schemas.LevelView | JSONResponse:
        if body.quantity_change == 0:
            return error_response(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "validation_failed",
                "Invalid fields: quantity_change",
                [FieldError(field="quantity_change", message="must not be zero", type="value_error")],
            )
        # A warehouse key limited to one warehouse (API_KEYS `warehouse_id`) adjusts that warehouse only.
        principal.require_warehouse(body.warehouse_id)
        try:
            level = await commands.adjust(
                body.sku, body.warehouse_id, body.quantity_change, body.reason, principal.name
            )
        except (WarehouseNotFoundError, UnknownStockError, StockLevelError) as exc:
            return stock_errors(exc)
        return _level(level)

    @app.post(
        "/stock/receipts",
        operation_id="receiveStock",
        response_model=schemas.LevelView,
        status_code=status.HTTP_201_CREATED,
    )
    async def receive(
        body: schemas.GoodsReceiptRequest,
        principal: Annotated[Principal, Depends(auth.dependency(roles=frozenset({Role.WAREHOUSE})))],
    ) -> schemas.LevelView | JSONResponse:
        principal.require_warehouse(body.warehouse_id)
        try:
            level = await commands.receive_goods(body.sku, body.warehouse_id, body.quantity, body.reference)
        except (WarehouseNotFoundError, UnknownStockError, StockLevelError) as exc:
            return stock_errors(exc)
        except DuplicateReceiptError as exc:
            return error_response(status.HTTP_409_CONFLICT, "duplicate_receipt", str(exc))
        return _level(level)

    @app.put(
        "/stock/{sku}/warehouses/{warehouse_id}/safety-stock",
        operation_id="setSafetyStock",
        response_model=schemas.LevelView,
        dependencies=[ops],
    )
    async def safety_stock(
        sku: Sku, warehouse_id: WarehouseId, body: schemas.SafetyStockRequest
    ) -> schemas.LevelView | JSONResponse:
        try:
            return _level(await commands.set_safety_stock(sku, warehouse_id, body.safety_stock))
        except (WarehouseNotFoundError, UnknownStockError, StockLevelError) as exc:
            return stock_errors(exc)

    @app.put(
        "/skus/{sku}/unit-cost", operation_id="setUnitCost", response_model=schemas.UnitCostRequest, dependencies=[ops]
    )
    async def unit_cost(sku: Sku, body: schemas.UnitCostRequest) -> schemas.UnitCostRequest:
        await commands.set_unit_cost(sku, body.unit_cost_minor, body.currency)
        return body

    # ------------------------------------------------------------------ availability (Redis view)

    @app.get(
        "/availability/{sku}",
        operation_id="getAvailability",
        response_model=schemas.AvailabilityView,
        dependencies=[shop],
    )
    async def availability(sku: Sku) -> schemas.AvailabilityView:
        entries = [schemas.AvailabilityEntry(**vars(e)) for e in await view.availability(sku)]
        return schemas.AvailabilityView(sku=sku, available=sum(e.available for e in entries), warehouses=entries)

    @app.post(
        "/availability/rebuild",
        operation_id="rebuildAvailability",
        response_model=schemas.RebuildView,
        dependencies=[ops],
    )
    async def rebuild() -> schemas.RebuildView:
        result = await rebuild_view(db, view, registry)
        return schemas.RebuildView(levels=result.levels, cleared=result.cleared)

    # ------------------------------------------------------------------ replenishment

    @app.get(
        "/replenishment/policies",
        operation_id="listReplenishmentPolicies",
        response_model=list[schemas.PolicyView],
        dependencies=[warehouse],
    )
    async def policies(sku: Sku | None = None) -> list[schemas.PolicyView]:
        return [_policy(p) for p in await queries.policies(sku)]

    @app.put(
        "/replenishment/policies/{sku}/{warehouse_id}",
        operation_id="putReplenishmentPolicy",
        response_model=schemas.PolicyAccepted,
        dependencies=[ops],
    )
    async def put_policy(
        sku: Sku, warehouse_id: WarehouseId, body: schemas.PolicyRequest
    ) -> schemas.PolicyAccepted | JSONResponse:
        try:
            policy = ReplenishmentPolicy(
                sku, warehouse_id, body.reorder_point, body.reorder_quantity, body.order_up_to, body.lead_time_days
            )
        except PolicyError as exc:
            return error_response(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "validation_failed",
                f"Invalid fields: {exc.field}",
                [FieldError(field=exc.field, message=exc.message, type="value_error")],
            )
        try:
            raised = await commands.put_policy(policy)
        except WarehouseNotFoundError as exc:
            return stock_errors(exc)
        return schemas.PolicyAccepted(**vars(policy), purchase_order_raised=raised)

    @app.delete(
        "/replenishment/policies/{sku}/{warehouse_id}",
        operation_id="deleteReplenishmentPolicy",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        dependencies=[ops],
    )
    async def delete_policy(sku: Sku, warehouse_id: WarehouseId) -> Response:
        if not await commands.delete_policy(sku, warehouse_id):
            return _not_found("policy_not_found", f"No replenishment policy for {sku} in {warehouse_id}.")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.get(
        "/purchase-orders",
        operation_id="listPurchaseOrders",
        response_model=list[schemas.PurchaseOrderView],
        dependencies=[warehouse],
    )
    async def purchase_orders(
        status_: Annotated[str | None, Query(alias="status", pattern="^(open|received)$")] = None,
    ) -> list[schemas.PurchaseOrderView]:
        return [_po(o) for o in await queries.purchase_orders(status_)]

    @app.post(
        "/purchase-orders/{purchase_order_id}/receive",
        operation_id="receivePurchaseOrder",
        response_model=schemas.PurchaseOrderView,
    )
    async def receive_purchase_order(
        purchase_order_id: UUID,
        principal: Annotated[Principal, Depends(auth.dependency(roles=frozenset({Role.WAREHOUSE})))],
        body: schemas.ReceivePurchaseOrderRequest | None = None,
    ) -> schemas.PurchaseOrderView | JSONResponse:
        if principal.warehouse_id is not None:
            # Its goods arrive at the purchase order's warehouse (which never changes).
            ordered = await queries.purchase_order(purchase_order_id)
            if ordered is not None:
                principal.require_warehouse(ordered.warehouse_id, f"purchase order {purchase_order_id}")
        try:
            received = await commands.receive_purchase_order(purchase_order_id, body.quantity if body else None)
        except PurchaseOrderNotFoundError:
            return _not_found("purchase_order_not_found", f"No purchase order {purchase_order_id}.")
        except PurchaseOrderClosedError as exc:
            return error_response(status.HTTP_409_CONFLICT, "purchase_order_closed", str(exc))
        return _po(received)

    @app.get(
        "/reservations/{order_id}",
        operation_id="getReservation",
        response_model=schemas.ReservationView,
        dependencies=[warehouse],
    )
    async def reservation(order_id: UUID) -> schemas.ReservationView | JSONResponse:
        found = await queries.reservation(order_id)
        if found is None:
            return _not_found("reservation_not_found", f"No reservation for order {order_id}.")
        return schemas.ReservationView(
            order_id=found.order_id,
            reservation_id=found.reservation_id,
            status=found.status,
            expires_at=found.expires_at,
            created_at=found.created_at,
            allocations=[schemas.ReservationLineView(**vars(p)) for p in found.picks],
            requested=[schemas.BackorderLine(sku=r.sku, quantity=r.quantity) for r in found.requested],
        )

    @app.post(
        "/reservations/{order_id}/expire",
        operation_id="expireReservation",
        status_code=status.HTTP_202_ACCEPTED,
        response_class=Response,
        dependencies=[ops],
    )
    async def expire(order_id: UUID) -> Response:
        """Releases an unpaid reservation now, as its expiry would: ReservationExpired goes out and the order
        saga cancels the order."""
        try:
            await commands.expire_reservation(order_id)
        except ReservationNotFoundError:
            return _not_found("reservation_not_found", f"No reservation for order {order_id}.")
        except ReservationNotExpirableError as exc:
            return error_response(status.HTTP_409_CONFLICT, "reservation_not_expirable", str(exc))
        return Response(status_code=status.HTTP_202_ACCEPTED)

    @app.get(
        "/backorders",
        operation_id="listBackorders",
        response_model=list[schemas.BackorderView],
        dependencies=[warehouse],
    )
    async def backorders() -> list[schemas.BackorderView]:
        return [
            schemas.BackorderView(
                order_id=r.order_id,
                reservation_id=r.reservation_id,
                waiting_since=r.created_at,
                lines=[schemas.BackorderLine(sku=line.sku, quantity=line.quantity) for line in r.requested],
            )
            for r in await queries.backorders()
        ]

    # ------------------------------------------------------------------ reports

    @app.get(
        "/reports/stock-by-warehouse",
        operation_id="getStockByWarehouseReport",
        response_model=list[schemas.WarehouseTotalsView],
        dependencies=[warehouse],
    )
    async def stock_by_warehouse() -> list[schemas.WarehouseTotalsView]:
        return [schemas.WarehouseTotalsView(**vars(t)) for t in await queries.stock_by_warehouse()]

    @app.get(
        "/reports/low-stock",
        operation_id="getLowStockReport",
        response_model=list[schemas.LowStockView],
        dependencies=[warehouse],
    )
    async def low_stock() -> list[schemas.LowStockView]:
        return [
            schemas.LowStockView(
                **_level(item.level).model_dump(),
                reorder_point=item.reorder_point,
                reasons=list(item.reasons),
                open_purchase_order_id=item.open_purchase_order.purchase_order_id if item.open_purchase_order else None,
            )
            for item in await queries.low_stock()
        ]

    @app.get(
        "/reports/stock-value",
        operation_id="getStockValueReport",
        response_model=schemas.StockValueView,
        dependencies=[ops],
    )
    async def stock_value() -> schemas.StockValueView:
        value = await queries.stock_value()
        return schemas.StockValueView(
            lines=[schemas.StockValueLineView(**vars(line), value_minor=line.value_minor) for line in value.lines],
            totals_minor=value.totals_minor,
            unpriced_skus=value.unpriced_skus,
        )

    for router in routers:
        app.include_router(router)
    return app
