"""Use cases of inventory-service: reserve, release, and commit stock for an order."""

from uuid import UUID, uuid4

from inventory_service.adapters.stock_repository import Reservation, StockRepository
from inventory_service.domain.allocation import LineRequest, allocate
from oms_events.messages import (
    ReleaseStock,
    ReserveStock,
    Shipped,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Allocation, Shortage
from oms_runtime.eventstore import EventStore
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext

log = get_logger(__name__)

STREAM_TYPE = "reservation"


def stream_id(order_id: UUID) -> str:
    return f"reservation-{order_id}"


def _allocations(reservation: Reservation) -> list[Allocation]:
    return [Allocation(sku=p.sku, warehouse_id=p.warehouse_id, quantity=p.quantity) for p in reservation.picks]


class InventoryHandlers:
    def __init__(self, repository: StockRepository, store: EventStore) -> None:
        self._repo = repository
        self._store = store

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(ReserveStock, self.reserve_stock)
        handlers.register(ReleaseStock, self.release_stock)
        handlers.register(Shipped, self.commit_shipped)
        return handlers

    async def _record(
        self, ctx: MessageContext, order_id: UUID, event: StockReserved | StockReservationFailed | StockReleased
    ) -> None:
        sid = stream_id(order_id)
        version = await self._store.current_version(ctx.session, sid)
        await ctx.record(self._store, sid, STREAM_TYPE, version, [event])

    async def reserve_stock(self, ctx: MessageContext, command: ReserveStock) -> None:
        existing = await self._repo.reservation(ctx.session, command.order_id, lock=True)
        if existing is not None:
            # A re-sent command gets the answer the first one got, and reserves nothing twice.
            await self._answer_again(ctx, existing)
            return
        levels = await self._repo.lock_levels(ctx.session, (line.sku for line in command.lines))
        result = allocate(
            [LineRequest(line.sku, line.quantity) for line in command.lines],
            {(lvl.sku, lvl.warehouse_id): lvl.available for lvl in levels},
        )
        reservation_id = uuid4()
        if not result.complete:
            await self._repo.add_reservation(ctx.session, command.order_id, reservation_id, "failed", ())
            await self._record(
                ctx,
                command.order_id,
                StockReservationFailed(
                    order_id=command.order_id,
                    reason="not enough stock for " + ", ".join(s.sku for s in result.shortfalls),
                    shortages=[
                        Shortage(sku=s.sku, requested=s.requested, available=s.available) for s in result.shortfalls
                    ],
                ),
            )
            log.info("stock reservation failed", shortages=[s.sku for s in result.shortfalls])
            return
        await self._repo.change_reserved(ctx.session, result.picks, +1)
        await self._repo.add_reservation(ctx.session, command.order_id, reservation_id, "reserved", result.picks)
        await self._record(
            ctx,
            command.order_id,
            StockReserved(
                order_id=command.order_id,
                reservation_id=reservation_id,
                allocations=[
                    Allocation(sku=p.sku, warehouse_id=p.warehouse_id, quantity=p.quantity) for p in result.picks
                ],
            ),
        )
        log.info("stock reserved", reservation_id=str(reservation_id), lines=len(result.picks))

    async def _answer_again(self, ctx: MessageContext, reservation: Reservation) -> None:
        if reservation.status in ("reserved", "committed"):
            answer: StockReserved | StockReservationFailed = StockReserved(
                order_id=reservation.order_id,
                reservation_id=reservation.reservation_id,
                allocations=_allocations(reservation),
            )
        elif reservation.status == "failed":
            answer = StockReservationFailed(
                order_id=reservation.order_id, reason="not enough stock (answered before)", shortages=[]
            )
        else:
            answer = StockReservationFailed(
                order_id=reservation.order_id, reason="the order's stock was already released", shortages=[]
            )
        await ctx.emit(answer)

    async def release_stock(self, ctx: MessageContext, command: ReleaseStock) -> None:
        reservation = await self._repo.reservation(ctx.session, command.order_id, lock=True)
        if reservation is None:
            # Released before it was reserved (a cancel overtook the reservation): remember it,
            # so that a late ReserveStock reserves nothing.
            await self._repo.add_reservation(ctx.session, command.order_id, uuid4(), "released", ())
            await self._record(ctx, command.order_id, StockReleased(order_id=command.order_id, reservation_id=None))
            return
        if reservation.status == "reserved":
            held = await self._repo.unshipped_picks(ctx.session, reservation.reservation_id)
            await self._repo.change_reserved(ctx.session, held, -1)
            await self._repo.set_status(ctx.session, command.order_id, "released")
            await self._record(
                ctx,
                command.order_id,
                StockReleased(order_id=command.order_id, reservation_id=reservation.reservation_id),
            )
            log.info("stock released", reservation_id=str(reservation.reservation_id), reason=command.reason)
            return
        if reservation.status == "committed":
            log.warning("release of shipped stock refused", reservation_id=str(reservation.reservation_id))
            return
        # failed or already released: nothing is held, but the saga still needs its answer.
        reservation_id = reservation.reservation_id if reservation.status == "released" else None
        await ctx.emit(StockReleased(order_id=command.order_id, reservation_id=reservation_id))

    async def commit_shipped(self, ctx: MessageContext, event: Shipped) -> None:
        reservation = await self._repo.reservation(ctx.session, event.order_id, lock=True)
        if reservation is not None and reservation.status == "committed":
            log.info("shipment already taken out of stock")  # the same shipment again: nothing to do
            return
        if reservation is None or reservation.status != "reserved":
            log.warning("shipment for an order without a live reservation", status=getattr(reservation, "status", None))
            return
        # Split orders ship per warehouse; the reservation is committed when its last warehouse ships.
        shipped = await self._repo.unshipped_picks(ctx.session, reservation.reservation_id, event.warehouse_id)
        await self._repo.take_out(ctx.session, shipped)
        await self._repo.mark_shipped(ctx.session, reservation.reservation_id, event.warehouse_id)
        if not await self._repo.unshipped_picks(ctx.session, reservation.reservation_id):
            await self._repo.set_status(ctx.session, event.order_id, "committed")
