"""Every change of stock goes through the ledger: the row changes, a StockLevelChanged event (keyed by sku)
is recorded and queued in the same transaction, and the replenishment policy is checked. Reservations,
backorders and purchase orders are built on it.

The stock events of one sku + warehouse form a stream `stock-{sku}@{warehouse}` in the event store: the
history the availability view is rebuilt from.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.stock_repository import StockLevel, StockRepository
from inventory_service.domain.allocation import (
    AllocationResult,
    LineRequest,
    Pick,
    SourcingPreference,
    allocate,
)
from inventory_service.domain.geo import Location, distance_km, locate
from oms_events.messages import (
    Event,
    PurchaseOrderRaised,
    StockLevelChanged,
    StockReserved,
)
from oms_events.values import INT32_MAX, Allocation
from oms_runtime.eventstore import EventStore
from oms_runtime.logging import get_logger
from oms_runtime.messaging import MessageContext

log = get_logger(__name__)

STOCK_STREAM_TYPE = "stock-level"
RESERVATION_STREAM_TYPE = "reservation"


def stock_stream_id(sku: str, warehouse_id: str) -> str:
    return f"stock-{sku}@{warehouse_id}"


def reservation_stream_id(order_id: UUID) -> str:
    return f"reservation-{order_id}"


class UnknownStockError(LookupError):
    """No stock row for this sku in this warehouse (or no such warehouse)."""

    def __init__(self, sku: str, warehouse_id: str) -> None:
        super().__init__(f"no stock of {sku} in warehouse {warehouse_id}")
        self.sku = sku
        self.warehouse_id = warehouse_id


class StockLevelError(ValueError):
    """A change that would make on hand or reserved negative, reserve more than is on hand, or put more on
    hand than a stock level holds (an INTEGER)."""


@dataclass(frozen=True)
class StockChange:
    sku: str
    warehouse_id: str
    cause: str
    on_hand_change: int = 0
    reserved_change: int = 0
    safety_stock: int | None = None
    reason: str | None = None
    order_id: UUID | None = None
    reference: str | None = None


def allocations(picks: Sequence[Pick]) -> list[Allocation]:
    return [Allocation(sku=p.sku, warehouse_id=p.warehouse_id, quantity=p.quantity) for p in picks]


class StockLedger:
    def __init__(
        self,
        repository: StockRepository,
        store: EventStore,
        *,
        reservation_ttl: timedelta | None,
        preference: SourcingPreference = SourcingPreference.NEAREST,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repo = repository
        self.store = store
        self.reservation_ttl = reservation_ttl
        self.preference = preference
        self.clock = clock

    # ------------------------------------------------------------------ one change

    async def change(self, ctx: MessageContext, change: StockChange) -> StockLevel:
        session = ctx.session
        if change.safety_stock is not None and change.safety_stock < 0:
            raise StockLevelError(f"safety stock of {change.sku} in {change.warehouse_id} cannot be negative")
        applied = await self.repo.apply_change(
            session,
            change.sku,
            change.warehouse_id,
            change.on_hand_change,
            change.reserved_change,
            change.safety_stock,
        )
        if applied is None:
            level = await self.repo.lock_level(session, change.sku, change.warehouse_id)
            if level is None:
                raise UnknownStockError(change.sku, change.warehouse_id)
            outcome = (
                f"would leave more than a stock level holds ({INT32_MAX})"
                if level.on_hand + change.on_hand_change > INT32_MAX
                else "would leave less than nothing"
            )
            raise StockLevelError(
                f"{change.sku} in {change.warehouse_id}: on hand {level.on_hand}, reserved {level.reserved}; "
                f"changing on hand by {change.on_hand_change} and reserved by {change.reserved_change} {outcome}"
            )
        new, version = applied
        event = StockLevelChanged(
            sku=new.sku,
            warehouse_id=new.warehouse_id,
            on_hand=new.on_hand,
            reserved=new.reserved,
            available=new.available,
            safety_stock=new.safety_stock,
            on_hand_change=change.on_hand_change,
            reserved_change=change.reserved_change,
            cause=change.cause,
            reason=change.reason,
            order_id=change.order_id,
            reference=change.reference,
            sequence=version,
        )
        # The row's version counts its events, so the stream's expected version needs no query; a row
        # changed past the ledger would be caught by the event store's unique (stream, version).
        stream = stock_stream_id(change.sku, change.warehouse_id)
        await ctx.record(self.store, stream, STOCK_STREAM_TYPE, version - 1, [event])
        await self.replenish(ctx, new)
        return new

    async def replenish(self, ctx: MessageContext, level: StockLevel) -> UUID | None:
        """Raises a purchase order when available is at or below the policy's reorder point and none is open."""
        found = await self.repo.policies(ctx.session, level.sku, level.warehouse_id)
        if not found or not found[0].needs_order(level.available):
            return None
        policy = found[0]
        purchase_order_id = uuid4()
        quantity = policy.order_quantity(level.available)
        today = self.clock().date()
        if not await self.repo.open_purchase_order(ctx.session, purchase_order_id, policy, quantity, today):
            return None  # one is open already: it is on its way
        await ctx.emit(
            PurchaseOrderRaised(
                sku=level.sku,
                purchase_order_id=purchase_order_id,
                warehouse_id=level.warehouse_id,
                quantity=quantity,
                available=level.available,
                reorder_point=policy.reorder_point,
                lead_time_days=policy.lead_time_days,
                expected_by=policy.expected_by(today),
            )
        )
        log.info(
            "purchase order raised",
            sku=level.sku,
            warehouse_id=level.warehouse_id,
            quantity=quantity,
            purchase_order_id=str(purchase_order_id),
        )
        return purchase_order_id

    # ------------------------------------------------------------------ reservations

    async def record_reservation_event(self, ctx: MessageContext, order_id: UUID, event: Event) -> None:
        stream = reservation_stream_id(order_id)
        version = await self.store.current_version(ctx.session, stream)
        await ctx.record(self.store, stream, RESERVATION_STREAM_TYPE, version, [event])

    async def allocate(
        self, session: AsyncSession, lines: Sequence[LineRequest], shipping_address: dict[str, Any] | None
    ) -> AllocationResult:
        """Locks the skus' rows (in a fixed order) and applies the sourcing rule to what is available."""
        levels = await self.repo.lock_levels(session, (line.sku for line in lines))
        return allocate(
            lines,
            {(lvl.sku, lvl.warehouse_id): lvl.available for lvl in levels},
            preference=self.preference,
            distances_km=await self.distances(session, shipping_address),
        )

    async def distances(self, session: AsyncSession, shipping_address: dict[str, Any] | None) -> dict[str, float]:
        if shipping_address is None or self.preference is not SourcingPreference.NEAREST:
            return {}
        target = locate(str(shipping_address.get("country", "")), str(shipping_address.get("postal_code", "")))
        if target is None:
            return {}
        return {
            wh.warehouse_id: distance_km(target, Location(wh.latitude, wh.longitude))
            for wh in await self.repo.warehouses(session)
            if wh.latitude is not None and wh.longitude is not None
        }

    def expiry(self) -> datetime | None:
        return self.clock() + self.reservation_ttl if self.reservation_ttl is not None else None

    async def hold(self, ctx: MessageContext, order_id: UUID, picks: Sequence[Pick]) -> None:
        for pick in picks:
            await self.change(
                ctx,
                StockChange(
                    pick.sku, pick.warehouse_id, "reservation", reserved_change=pick.quantity, order_id=order_id
                ),
            )

    async def unhold(self, ctx: MessageContext, order_id: UUID, picks: Sequence[Pick], cause: str) -> None:
        for pick in picks:
            await self.change(
                ctx,
                StockChange(pick.sku, pick.warehouse_id, cause, reserved_change=-pick.quantity, order_id=order_id),
            )

    async def serve_backorders(self, ctx: MessageContext, skus: Iterable[str]) -> int:
        """Reserves waiting backorders that ask for these skus, oldest first, while stock lasts.

        Strictly first come, first served per sku: the first backorder that cannot be served in full stops
        the round, so that a younger order never takes the units an older one waits for.
        """
        served = 0
        for waiting in await self.repo.backorders(ctx.session, skus):
            current = await self.repo.reservation(ctx.session, waiting.order_id, lock=True)
            if current is None or current.status != "backordered":
                continue  # served or cancelled meanwhile
            result = await self.allocate(ctx.session, current.requested, current.shipping_address)
            if not result.complete:
                break
            await self.hold(ctx, current.order_id, result.picks)
            await self.repo.add_lines(ctx.session, current.reservation_id, result.picks)
            await self.repo.set_status(ctx.session, current.order_id, "reserved", expires_at=self.expiry())
            await self.record_reservation_event(
                ctx,
                current.order_id,
                StockReserved(
                    order_id=current.order_id,
                    reservation_id=current.reservation_id,
                    allocations=allocations(result.picks),
                ),
            )
            log.info("backorder reserved", order_id=str(current.order_id), lines=len(result.picks))
            served += 1
        return served
