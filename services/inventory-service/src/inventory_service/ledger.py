"""Every change of stock goes through the ledger: the row changes, a StockLevelChanged event (keyed by sku)
is recorded and queued in the same transaction, and the replenishment policy is checked. Reservations,
backorders and purchase orders are built on it.

The stock events of one sku + warehouse form a stream `stock-{sku}@{warehouse}` in the event store: the
history the availability view is rebuilt from.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.reservation_statements import waiting_backorders
from inventory_service.adapters.stock_repository import StockLevel, StockRepository
from inventory_service.adapters.stock_statements import (
    LockedLevel,
    OrderStock,
    StockWrites,
    load_order_stock,
    lock_level,
)
from inventory_service.domain.allocation import (
    AllocationResult,
    LineRequest,
    Pick,
    SourcingPreference,
    allocate,
)
from inventory_service.domain.geo import Location, distance_km, locate
from inventory_service.domain.replenishment import ReplenishmentPolicy
from oms_events import ContractMessage, Envelope
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
from oms_runtime.outbox import pending_rows

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


async def emit_stored(ctx: MessageContext, event: ContractMessage) -> tuple[Envelope, str]:
    """Emits an event that is also stored in the event store: its envelope and the JSON the outbox queued
    for it, so that it is serialised once (as `MessageContext.record` does for the event store's appends)."""
    envelope = await ctx.emit(event)
    queued = pending_rows(ctx.session)[-1]
    assert queued.event_id == envelope.event_id
    return envelope, queued.value.decode()


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
        """One change on its own (the API's, a return's): its level read and locked, then written with its
        event in one statement."""
        locked = await lock_level(ctx.session, change.sku, change.warehouse_id)
        if locked is None:
            raise UnknownStockError(change.sku, change.warehouse_id)
        writes = StockWrites()
        new = await self.stage_change(ctx, writes, locked, change)
        await writes.flush(ctx.session)
        await self.replenish_with(ctx, new.level, new.policy)
        return new.level

    async def stage_change(
        self, ctx: MessageContext, writes: StockWrites, locked: LockedLevel, change: StockChange
    ) -> LockedLevel:
        """Decides a change of a level this transaction locked: the new level and its StockLevelChanged,
        collected on `writes` (the UPDATE checks the level again when they are written)."""
        if change.safety_stock is not None and change.safety_stock < 0:
            raise StockLevelError(f"safety stock of {change.sku} in {change.warehouse_id} cannot be negative")
        level = locked.level
        on_hand = level.on_hand + change.on_hand_change
        reserved = level.reserved + change.reserved_change
        if on_hand < 0 or reserved < 0 or reserved > on_hand or on_hand > INT32_MAX:
            outcome = (
                f"would leave more than a stock level holds ({INT32_MAX})"
                if on_hand > INT32_MAX
                else "would leave less than nothing"
            )
            raise StockLevelError(
                f"{change.sku} in {change.warehouse_id}: on hand {level.on_hand}, reserved {level.reserved}; "
                f"changing on hand by {change.on_hand_change} and reserved by {change.reserved_change} {outcome}"
            )
        safety_stock = level.safety_stock if change.safety_stock is None else change.safety_stock
        new = StockLevel(level.sku, level.warehouse_id, on_hand, reserved, safety_stock)
        # The row's version counts its events, so the stream's expected version needs no query; a row
        # changed past the ledger would be caught by the event store's unique (stream, version).
        version = locked.version + 1
        envelope, value = await emit_stored(
            ctx,
            StockLevelChanged(
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
            ),
        )
        stream = stock_stream_id(change.sku, change.warehouse_id)
        writes.change_level(stream, level, change.on_hand_change, change.reserved_change, change.safety_stock, version)
        writes.append(stream, STOCK_STREAM_TYPE, version, envelope.event_id, envelope.type, value)
        return replace(locked, level=new, version=version)

    async def replenish(self, ctx: MessageContext, level: StockLevel) -> UUID | None:
        """Raises a purchase order when available is at or below the policy's reorder point and none is open."""
        found = await self.repo.policies(ctx.session, level.sku, level.warehouse_id)
        return await self.replenish_with(ctx, level, found[0] if found else None)

    async def replenish_with(
        self, ctx: MessageContext, level: StockLevel, policy: ReplenishmentPolicy | None
    ) -> UUID | None:
        """The same with the level's policy known (read with the level)."""
        if policy is None or not policy.needs_order(level.available):
            return None
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

    async def stage_reservation_event(
        self, ctx: MessageContext, writes: StockWrites, order_id: UUID, stream_version: int, event: Event
    ) -> None:
        """The reservation stream's next event (after `stream_version`), collected on `writes`."""
        envelope, value = await emit_stored(ctx, event)
        writes.append(
            reservation_stream_id(order_id),
            RESERVATION_STREAM_TYPE,
            stream_version + 1,
            envelope.event_id,
            envelope.type,
            value,
        )

    async def order_stock(self, session: AsyncSession, order_id: UUID, skus: Sequence[str] = ()) -> OrderStock:
        """The order's reservation and the levels of `skus` and of what it holds, locked, in one statement."""
        return await load_order_stock(session, order_id, reservation_stream_id(order_id), skus)

    def allocate_from(
        self, stock: OrderStock, lines: Sequence[LineRequest], shipping_address: dict[str, Any] | None
    ) -> AllocationResult:
        """The sourcing rule applied to the locked levels of the lines' skus."""
        skus = {line.sku for line in lines}
        distances: dict[str, float] = {}
        target = self._target(shipping_address)
        for (sku, warehouse_id), locked in stock.levels.items():
            if sku in skus and target is not None and locked.latitude is not None and locked.longitude is not None:
                distances[warehouse_id] = distance_km(target, Location(locked.latitude, locked.longitude))
        return allocate(
            lines,
            {key: locked.level.available for key, locked in stock.levels.items() if key[0] in skus},
            preference=self.preference,
            distances_km=distances,
        )

    def _target(self, shipping_address: dict[str, Any] | None) -> Location | None:
        if shipping_address is None or self.preference is not SourcingPreference.NEAREST:
            return None
        return locate(str(shipping_address.get("country", "")), str(shipping_address.get("postal_code", "")))

    async def stage_picks(
        self,
        ctx: MessageContext,
        writes: StockWrites,
        stock: OrderStock,
        picks: Sequence[Pick],
        change: Callable[[Pick], StockChange],
    ) -> list[LockedLevel]:
        """The change `change` makes for each pick, on the order's locked levels (kept current)."""
        changed = []
        for pick in picks:
            locked = stock.levels.get((pick.sku, pick.warehouse_id))
            if locked is None:
                raise UnknownStockError(pick.sku, pick.warehouse_id)
            new = await self.stage_change(ctx, writes, locked, change(pick))
            stock.levels[(pick.sku, pick.warehouse_id)] = new
            changed.append(new)
        return changed

    async def replenish_all(self, ctx: MessageContext, changed: Iterable[LockedLevel]) -> None:
        """After the changes are written: a purchase order for each level that fell to its reorder point."""
        for locked in changed:
            await self.replenish_with(ctx, locked.level, locked.policy)

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
        target = self._target(shipping_address)
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

    async def serve_backorders(self, ctx: MessageContext, skus: Iterable[str]) -> int:
        """Reserves waiting backorders that ask for these skus, oldest first, while stock lasts.

        Strictly first come, first served per sku: the first backorder that cannot be served in full stops
        the round, so that a younger order never takes the units an older one waits for.
        """
        served = 0
        for order_id in await waiting_backorders(ctx.session, skus):
            current = await self.repo.reservation(ctx.session, order_id, lock=True)
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
