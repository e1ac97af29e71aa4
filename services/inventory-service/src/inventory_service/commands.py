"""Use cases of inventory-service's HTTP API that change stock: each one is a transaction of its own, with
its events in the outbox. Stock that arrives (a receipt, a purchase order, an upward adjustment) serves
the waiting backorders before the transaction commits."""

from typing import TypeVar
from uuid import UUID

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.stock_repository import PurchaseOrder, StockLevel, Warehouse
from inventory_service.domain.replenishment import ReplenishmentPolicy
from inventory_service.handlers import InventoryHandlers
from inventory_service.ledger import StockChange, StockLedger
from oms_events import MessageRegistry
from oms_events.messages import PurchaseOrderReceived
from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from oms_runtime.messaging import MessageContext
from oms_runtime.use_cases import UseCaseRunner, lost_a_race

log = get_logger(__name__)

SERVICE = "inventory-service"

T = TypeVar("T")


class WarehouseNotFoundError(LookupError):
    pass


class PurchaseOrderNotFoundError(LookupError):
    pass


class ReservationNotFoundError(LookupError):
    pass


class ReservationNotExpirableError(Exception):
    """Only a live reservation that is not paid for yet can be expired."""


class DuplicateReceiptError(Exception):
    """This delivery was received before: a retry must not count the goods twice."""


class PurchaseOrderClosedError(Exception):
    pass


def _is_deadlock(exc: DBAPIError) -> bool:
    return "deadlock detected" in str(exc.orig) or "could not serialize" in str(exc.orig)


def _worth_another_attempt(exc: Exception) -> bool:
    return lost_a_race(exc) or (isinstance(exc, DBAPIError) and _is_deadlock(exc))


class InventoryCommands:
    def __init__(
        self,
        db: Database,
        ledger: StockLedger,
        handlers: InventoryHandlers,
        registry: MessageRegistry,
    ) -> None:
        self._ledger = ledger
        self._handlers = handlers
        self._repo = ledger.repo
        # Two receipts of one sku in different warehouses may lock its rows in another order than a
        # reservation does: PostgreSQL then aborts one of them, and it is simply run again.
        self._use_cases = UseCaseRunner(db, registry, SERVICE, retry_on=_worth_another_attempt)

    async def _require_warehouse(self, session: AsyncSession, warehouse_id: str) -> None:
        if warehouse_id not in {w.warehouse_id for w in await self._repo.warehouses(session)}:
            raise WarehouseNotFoundError(warehouse_id)

    async def put_warehouse(self, warehouse: Warehouse) -> None:
        async def work(ctx: MessageContext) -> None:
            await self._repo.upsert_warehouse(ctx.session, warehouse)

        await self._use_cases.run(work)

    async def _arrive(self, ctx: MessageContext, change: StockChange) -> StockLevel:
        """Units arrive in a warehouse: on hand up, then the oldest backorders are served."""
        await self._require_warehouse(ctx.session, change.warehouse_id)
        await self._repo.lock_levels(ctx.session, [change.sku])
        await self._repo.ensure_level(ctx.session, change.sku, change.warehouse_id)
        await self._ledger.change(ctx, change)
        await self._ledger.serve_backorders(ctx, [change.sku])
        level = await self._repo.lock_level(ctx.session, change.sku, change.warehouse_id)
        assert level is not None
        return level

    async def receive_goods(self, sku: str, warehouse_id: str, quantity: int, reference: str | None) -> StockLevel:
        async def work(ctx: MessageContext) -> StockLevel:
            if reference is not None and not await self._repo.claim_receipt(
                ctx.session, sku, warehouse_id, reference, quantity
            ):
                raise DuplicateReceiptError(f"{reference} was received for {sku} in {warehouse_id} before")
            return await self._arrive(
                ctx, StockChange(sku, warehouse_id, "goods_receipt", on_hand_change=quantity, reference=reference)
            )

        level = await self._use_cases.run(work)
        log.info("goods received", sku=sku, warehouse_id=warehouse_id, quantity=quantity)
        return level

    async def adjust(self, sku: str, warehouse_id: str, quantity_change: int, reason: str, by: str) -> StockLevel:
        async def work(ctx: MessageContext) -> StockLevel:
            change = StockChange(
                sku, warehouse_id, "adjustment", on_hand_change=quantity_change, reason=reason, reference=by
            )
            if quantity_change > 0:
                return await self._arrive(ctx, change)
            await self._require_warehouse(ctx.session, warehouse_id)
            return await self._ledger.change(ctx, change)

        level = await self._use_cases.run(work)
        log.info("stock adjusted", sku=sku, warehouse_id=warehouse_id, change=quantity_change, reason=reason, by=by)
        return level

    async def set_safety_stock(self, sku: str, warehouse_id: str, safety_stock: int) -> StockLevel:
        async def work(ctx: MessageContext) -> StockLevel:
            await self._require_warehouse(ctx.session, warehouse_id)
            await self._repo.ensure_level(ctx.session, sku, warehouse_id)
            return await self._ledger.change(
                ctx, StockChange(sku, warehouse_id, "safety_stock", safety_stock=safety_stock)
            )

        return await self._use_cases.run(work)

    async def set_unit_cost(self, sku: str, unit_cost_minor: int, currency: str) -> None:
        async def work(ctx: MessageContext) -> None:
            await self._repo.set_unit_cost(ctx.session, sku, unit_cost_minor, currency)

        await self._use_cases.run(work)

    async def put_policy(self, policy: ReplenishmentPolicy) -> UUID | None:
        """Stores the policy and applies it at once: stock already at or below the reorder point is ordered."""

        async def work(ctx: MessageContext) -> UUID | None:
            await self._require_warehouse(ctx.session, policy.warehouse_id)
            await self._repo.put_policy(ctx.session, policy)
            level = await self._repo.lock_level(ctx.session, policy.sku, policy.warehouse_id)
            return await self._ledger.replenish(ctx, level) if level is not None else None

        return await self._use_cases.run(work)

    async def delete_policy(self, sku: str, warehouse_id: str) -> bool:
        async def work(ctx: MessageContext) -> bool:
            return await self._repo.delete_policy(ctx.session, sku, warehouse_id)

        return await self._use_cases.run(work)

    async def receive_purchase_order(self, purchase_order_id: UUID, quantity: int | None) -> PurchaseOrder:
        """The goods of an open purchase order arrived (all of it unless `quantity` says otherwise): on hand up,
        the purchase order closed, waiting backorders served oldest first."""

        async def work(ctx: MessageContext) -> PurchaseOrder:
            order = await self._repo.purchase_order(ctx.session, purchase_order_id, lock=True)
            if order is None:
                raise PurchaseOrderNotFoundError(str(purchase_order_id))
            if order.status != "open":
                raise PurchaseOrderClosedError(f"purchase order {purchase_order_id} was received already")
            received = quantity if quantity is not None else order.quantity
            # Closed first, so that the replenishment check of this very receipt may open the next one.
            await self._repo.close_purchase_order(ctx.session, purchase_order_id, received)
            await ctx.emit(
                PurchaseOrderReceived(
                    sku=order.sku,
                    purchase_order_id=purchase_order_id,
                    warehouse_id=order.warehouse_id,
                    quantity=received,
                )
            )
            await self._arrive(
                ctx,
                StockChange(
                    order.sku,
                    order.warehouse_id,
                    "purchase_order_receipt",
                    on_hand_change=received,
                    reference=str(purchase_order_id),
                ),
            )
            closed = await self._repo.purchase_order(ctx.session, purchase_order_id)
            assert closed is not None
            return closed

        result = await self._use_cases.run(work)
        log.info("purchase order received", purchase_order_id=str(purchase_order_id), quantity=result.received_quantity)
        return result

    async def expire_reservation(self, order_id: UUID) -> None:
        """Releases an unpaid reservation now, as its expiry would (ReservationExpired): for ops who need the
        stock of an order that stalls, without waiting for RESERVATION_TTL_S."""

        async def work(ctx: MessageContext) -> None:
            reservation = await self._repo.reservation(ctx.session, order_id, lock=True)
            if reservation is None:
                raise ReservationNotFoundError(str(order_id))
            if reservation.status != "reserved" or reservation.expires_at is None:
                state = "paid for" if reservation.status == "reserved" else reservation.status
                raise ReservationNotExpirableError(f"the reservation of order {order_id} is {state}")
            await self._handlers.expire(ctx, order_id)

        await self._use_cases.run(work)
