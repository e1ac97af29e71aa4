"""Use cases of inventory-service driven by messages: reserve (or backorder), release, expire and commit an
order's stock, stop a paid reservation's expiry, and put returned units back on hand."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.reservation_statements import stop_expiry
from inventory_service.adapters.stock_repository import Reservation, StockRepository
from inventory_service.adapters.stock_statements import LockedLevel, StockWrites
from inventory_service.domain.allocation import LineRequest
from inventory_service.ledger import StockChange, StockLedger, UnknownStockError, allocations
from oms_events.messages import (
    ItemsRestocked,
    PaymentCaptured,
    ReleaseStock,
    ReservationExpired,
    ReserveStock,
    RestockItems,
    Shipped,
    StockBackordered,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Shortage
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext

log = get_logger(__name__)

_PAID = "inventory_service.paid"
"""Where a batch transaction keeps its paid orders (the session's `info`)."""


class InventoryHandlers:
    def __init__(self, ledger: StockLedger) -> None:
        self._ledger = ledger
        self._repo: StockRepository = ledger.repo

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(ReserveStock, self.reserve_stock)
        handlers.register(ReleaseStock, self.release_stock)
        handlers.register(RestockItems, self.restock_items)
        handlers.register(Shipped, self.commit_shipped)
        handlers.register(PaymentCaptured, self.paid)
        handlers.batch_scope = self
        return handlers

    async def begin(self, session: AsyncSession, messages: Sequence[Any]) -> None:
        """A batch's paid orders stop their reservations' expiry together, at the batch's end."""
        session.info[_PAID] = []

    async def end(self, session: AsyncSession) -> None:
        await stop_expiry(session, session.info.pop(_PAID, []))

    async def reserve_stock(self, ctx: MessageContext, command: ReserveStock) -> None:
        # One statement reads the order's reservation and locks its skus' levels; one more writes the
        # decision (levels, their events, the reservation, its lines and its event).
        stock = await self._ledger.order_stock(ctx.session, command.order_id, [line.sku for line in command.lines])
        if stock.reservation is not None:
            # A re-sent command gets the answer the first one got, and reserves nothing twice.
            await self._answer_again(ctx, stock.reservation)
            return
        requested = [LineRequest(line.sku, line.quantity) for line in command.lines]
        address = command.shipping_address.model_dump(mode="json") if command.shipping_address else None
        result = self._ledger.allocate_from(stock, requested, address)
        reservation_id = uuid4()
        writes = StockWrites()
        answer: StockReserved | StockBackordered | StockReservationFailed
        changed: list[LockedLevel] = []
        if result.complete:
            changed = await self._ledger.stage_picks(
                ctx,
                writes,
                stock,
                result.picks,
                lambda p: StockChange(
                    p.sku, p.warehouse_id, "reservation", reserved_change=p.quantity, order_id=command.order_id
                ),
            )
            status, expires_at = "reserved", self._ledger.expiry()
            writes.add_lines(reservation_id, result.picks)
            answer = StockReserved(
                order_id=command.order_id, reservation_id=reservation_id, allocations=allocations(result.picks)
            )
        else:
            shortages = [Shortage(sku=s.sku, requested=s.requested, available=s.available) for s in result.shortfalls]
            expires_at = None
            if command.allow_backorder:
                status = "backordered"
                answer = StockBackordered(order_id=command.order_id, shortages=shortages)
            else:
                status, address = "failed", None
                answer = StockReservationFailed(
                    order_id=command.order_id,
                    reason="not enough stock for " + ", ".join(s.sku for s in result.shortfalls),
                    shortages=shortages,
                )
        writes.add_reservation(command.order_id, reservation_id, status, requested, address, expires_at)
        await self._ledger.stage_reservation_event(ctx, writes, command.order_id, stock.stream_version, answer)
        await writes.flush(ctx.session)
        await self._ledger.replenish_all(ctx, changed)
        if isinstance(answer, StockReserved):
            log.info("stock reserved", reservation_id=str(reservation_id), lines=len(result.picks))
        elif isinstance(answer, StockBackordered):
            log.info("order backordered", shortages=[s.sku for s in answer.shortages])
        else:
            log.info("stock reservation failed", shortages=[s.sku for s in result.shortfalls])

    async def _answer_again(self, ctx: MessageContext, reservation: Reservation) -> None:
        answer: StockReserved | StockReservationFailed | StockBackordered
        if reservation.status in ("reserved", "committed"):
            answer = StockReserved(
                order_id=reservation.order_id,
                reservation_id=reservation.reservation_id,
                allocations=allocations(reservation.picks),
            )
        elif reservation.status == "backordered":
            answer = StockBackordered(
                order_id=reservation.order_id,
                shortages=[Shortage(sku=r.sku, requested=r.quantity, available=0) for r in reservation.requested],
            )
        elif reservation.status == "failed":
            answer = StockReservationFailed(
                order_id=reservation.order_id, reason="not enough stock (answered before)", shortages=[]
            )
        elif reservation.status == "expired":
            answer = StockReservationFailed(
                order_id=reservation.order_id, reason="the order's reservation expired", shortages=[]
            )
        else:
            answer = StockReservationFailed(
                order_id=reservation.order_id, reason="the order's stock was already released", shortages=[]
            )
        await ctx.emit(answer)

    async def release_stock(self, ctx: MessageContext, command: ReleaseStock) -> None:
        stock = await self._ledger.order_stock(ctx.session, command.order_id)
        reservation = stock.reservation
        writes = StockWrites()
        if reservation is None:
            # Released before it was reserved (a cancel overtook the reservation): remember it,
            # so that a late ReserveStock reserves nothing.
            writes.add_reservation(command.order_id, uuid4(), "released", (), None, None)
            await self._ledger.stage_reservation_event(
                ctx,
                writes,
                command.order_id,
                stock.stream_version,
                StockReleased(order_id=command.order_id, reservation_id=None),
            )
            await writes.flush(ctx.session)
            return
        if reservation.status in ("reserved", "backordered"):
            held = stock.unshipped()
            changed = await self._ledger.stage_picks(
                ctx,
                writes,
                stock,
                held,
                lambda p: StockChange(
                    p.sku, p.warehouse_id, "release", reserved_change=-p.quantity, order_id=command.order_id
                ),
            )
            writes.set_status(command.order_id, reservation.status, "released", None)
            await self._ledger.stage_reservation_event(
                ctx,
                writes,
                command.order_id,
                stock.stream_version,
                StockReleased(order_id=command.order_id, reservation_id=reservation.reservation_id),
            )
            await writes.flush(ctx.session)
            await self._ledger.replenish_all(ctx, changed)
            await self._ledger.serve_backorders(ctx, {p.sku for p in held})
            log.info(
                "stock released",
                reservation_id=str(reservation.reservation_id),
                reason=command.reason,
                was=reservation.status,
            )
            return
        if reservation.status == "committed":
            log.warning("release of shipped stock refused", reservation_id=str(reservation.reservation_id))
            return
        # failed, expired or already released: nothing is held, but the saga still needs its answer.
        reservation_id = reservation.reservation_id if reservation.status in ("released", "expired") else None
        await ctx.emit(StockReleased(order_id=command.order_id, reservation_id=reservation_id))

    async def expire(self, ctx: MessageContext, order_id: UUID) -> None:
        """Releases a reservation whose expiry passed (the caller locked it and checked it is overdue): the
        read and the writes of a release, in two statements."""
        stock = await self._ledger.order_stock(ctx.session, order_id)
        reservation = stock.reservation
        assert reservation is not None
        held = stock.unshipped()
        writes = StockWrites()
        changed = await self._ledger.stage_picks(
            ctx,
            writes,
            stock,
            held,
            lambda p: StockChange(p.sku, p.warehouse_id, "expiry", reserved_change=-p.quantity, order_id=order_id),
        )
        writes.set_status(order_id, reservation.status, "expired", None)
        if held:
            await self._ledger.stage_reservation_event(
                ctx,
                writes,
                order_id,
                stock.stream_version,
                ReservationExpired(
                    order_id=order_id,
                    reservation_id=reservation.reservation_id,
                    allocations=allocations(held),
                    expired_at=self._ledger.clock(),
                ),
            )
        await writes.flush(ctx.session)
        await self._ledger.replenish_all(ctx, changed)
        await self._ledger.serve_backorders(ctx, {p.sku for p in held})
        log.warning("reservation expired", order_id=str(order_id), reservation_id=str(reservation.reservation_id))

    async def paid(self, ctx: MessageContext, event: PaymentCaptured) -> None:
        """A paid order's reservation no longer expires: the stock is the customer's until it ships.

        In a batch, at its end (`end`): the records of a batch come from several topics in no order
        between them, so a Shipped or a ReleaseStock of the order may come before its PaymentCaptured
        as well as after it; each of them ends the reservation, which then no longer expires either."""
        paid: list[UUID] | None = ctx.session.info.get(_PAID)
        if paid is not None:
            paid.append(event.order_id)
        else:
            await stop_expiry(ctx.session, [event.order_id])

    async def commit_shipped(self, ctx: MessageContext, event: Shipped) -> None:
        stock = await self._ledger.order_stock(ctx.session, event.order_id)
        reservation = stock.reservation
        if reservation is not None and reservation.status == "committed":
            log.info("shipment already taken out of stock")  # the same shipment again: nothing to do
            return
        if reservation is None or reservation.status != "reserved":
            log.warning("shipment for an order without a live reservation", status=getattr(reservation, "status", None))
            return
        # Split orders ship per warehouse; the reservation is committed when its last warehouse ships.
        writes = StockWrites()
        await self._ledger.stage_picks(
            ctx,
            writes,
            stock,
            stock.unshipped(event.warehouse_id),
            lambda p: StockChange(
                p.sku,
                p.warehouse_id,
                "shipment",
                on_hand_change=-p.quantity,
                reserved_change=-p.quantity,
                order_id=event.order_id,
                reference=str(event.shipment_id),
            ),
        )
        writes.ship(reservation.reservation_id, event.warehouse_id, len(stock.unshipped(event.warehouse_id)))
        if all(pick.warehouse_id == event.warehouse_id for pick in stock.unshipped()):
            writes.set_status(event.order_id, "reserved", "committed", None)
        await writes.flush(ctx.session)

    async def restock_items(self, ctx: MessageContext, command: RestockItems) -> None:
        """Returned units go back on hand once per return; a repeated command gets the same answer."""
        lines = [line.model_dump(mode="json") for line in command.lines]
        answer = ItemsRestocked(order_id=command.order_id, return_id=command.return_id, lines=command.lines)
        if not await self._repo.claim_restock(ctx.session, command.return_id, command.order_id, lines):
            log.info("return restocked before; answered again", return_id=str(command.return_id))
            await ctx.emit(answer)
            return
        known = {wh.warehouse_id for wh in await self._repo.warehouses(ctx.session)}
        for line in command.lines:
            if line.warehouse_id not in known:
                # Poison, not a retry case: the runtime dead-letters it with this reason.
                raise UnknownStockError(line.sku, line.warehouse_id)
        await self._repo.lock_levels(ctx.session, (line.sku for line in command.lines))
        for line in command.lines:
            await self._repo.ensure_level(ctx.session, line.sku, line.warehouse_id)
            await self._ledger.change(
                ctx,
                StockChange(
                    line.sku,
                    line.warehouse_id,
                    "restock",
                    on_hand_change=line.quantity,
                    order_id=command.order_id,
                    reference=str(command.return_id),
                ),
            )
        await ctx.emit(answer)
        await self._ledger.serve_backorders(ctx, {line.sku for line in command.lines})
        log.info("return restocked", return_id=str(command.return_id), units=sum(x.quantity for x in command.lines))
