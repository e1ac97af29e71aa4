"""Use cases of fulfilment-service: ship an order, cancel its shipments, the warehouse's manual steps
(pick, pack, ship) and the carriers' status updates.

Commands from the saga arrive through the runtime's processor (inbox, one transaction, outbox); the
HTTP API's use cases run in a transaction of their own (`FulfilmentOperations`), retried when another
writer appended to the same shipment first.
"""

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulfilment_service.adapters.return_repository import ReturnRepository
from fulfilment_service.adapters.shipment_repository import LoadedShipment, ShipmentRepository
from fulfilment_service.domain.carriers import DEFAULT_SERVICE_LEVELS, ServiceLevel
from fulfilment_service.domain.dispatch import WarehouseCalendars
from fulfilment_service.domain.returns import Return
from fulfilment_service.domain.shipment import (
    Dispatch,
    Shipment,
    ShipmentStateError,
    ShipmentStatus,
    automatic_parcel,
    lines_by_warehouse,
    shipment_id_for,
)
from oms_events import Message, MessageRegistry
from oms_events.messages import (
    AuthoriseReturn,
    CancelShipment,
    FulfilmentCancelled,
    ReturnAuthorised,
    ShipmentCancellationRefused,
    ShipmentCreated,
    ShipOrder,
    Shipped,
)
from oms_events.values import DeliveryMethod, Parcel
from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext
from oms_runtime.use_cases import UseCaseRunner, lost_a_race

log = get_logger(__name__)

SERVICE = "fulfilment-service"

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def random_entropy() -> int:
    return secrets.randbits(128)


class WarehouseMode(StrEnum):
    AUTOMATIC = "automatic"
    """Picked, packed and shipped as soon as the shipment is created (demos, load runs)."""
    MANUAL = "manual"
    """Warehouse staff pick, pack and ship through the API."""


@dataclass(frozen=True)
class FulfilmentConfig:
    default_mode: WarehouseMode = WarehouseMode.AUTOMATIC
    modes: Mapping[str, WarehouseMode] = field(default_factory=dict)
    service_levels: Mapping[DeliveryMethod, ServiceLevel] = field(default_factory=lambda: dict(DEFAULT_SERVICE_LEVELS))
    grams_per_unit: int = 500
    """Automatic mode weighs a parcel by its units (it has no scales)."""

    def mode_of(self, warehouse_id: str) -> WarehouseMode:
        return self.modes.get(warehouse_id, self.default_mode)


class ShipmentNotFoundError(Exception):
    pass


class ReturnNotFoundError(Exception):
    pass


class FulfilmentHandlers:
    def __init__(
        self,
        repository: ShipmentRepository,
        calendars: WarehouseCalendars,
        config: FulfilmentConfig | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        entropy: Callable[[], int] = random_entropy,
        returns: ReturnRepository | None = None,
    ) -> None:
        self._repo = repository
        self._returns = returns or ReturnRepository()
        self._calendars = calendars
        self._config = config or FulfilmentConfig()
        self._clock = clock
        self._entropy = entropy

    @property
    def repository(self) -> ShipmentRepository:
        return self._repo

    @property
    def returns(self) -> ReturnRepository:
        return self._returns

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(ShipOrder, self.ship_order)
        handlers.register(CancelShipment, self.cancel_shipment)
        handlers.register(AuthoriseReturn, self.authorise_return)
        handlers.batch_scope = self
        return handlers

    async def begin(self, session: AsyncSession, messages: Sequence[Any]) -> None:
        """A batch's ShipOrders share their shipments and write once (`adapters/shipment_batch.py`)."""
        self._repo.begin_batch(
            session,
            [
                shipment_id_for(m.order_id, warehouse_id)
                for m in messages
                if isinstance(m, ShipOrder)
                for warehouse_id in lines_by_warehouse(m.allocations)
            ],
        )

    async def end(self, session: AsyncSession) -> None:
        await self._repo.end_batch(session)

    async def ship_order(self, ctx: MessageContext, command: ShipOrder) -> None:
        """One shipment per warehouse. A re-sent command (a saga retry) creates nothing new: it is answered
        with the shipments the first one made (`ShipmentCreated`, and `Shipped` for those that left)."""
        # The shipping address is personal data: it goes to the carrier, never to the logs.
        by_warehouse = lines_by_warehouse(command.allocations)
        ids = {warehouse_id: shipment_id_for(command.order_id, warehouse_id) for warehouse_id in by_warehouse}
        loaded = await self._repo.load_many(ctx.session, ctx.registry, list(ids.values()))
        for warehouse_id, lines in by_warehouse.items():
            found = loaded[ids[warehouse_id]]
            if found.exists:
                await self._answer_again(ctx, found)
                continue
            shipment = found.shipment
            mode = self._config.mode_of(warehouse_id)
            events = shipment.create(command.order_id, warehouse_id, lines, command.delivery_method, mode.value)
            if mode is WarehouseMode.AUTOMATIC:
                events += self._ship_at_once(Shipment.rebuild(shipment.shipment_id, events))
            # All of the shipment's events in one append and one projection write, with the order's
            # placing time for the report (a ShipOrder of an older order-service has none: that
            # shipment is left out of the placed-to-shipped times, unless the placing was recorded
            # before, by the consumer of OrderPlaced this replaced).
            await self._repo.save(ctx, found, events, placed_at=command.placed_at)
            if mode is WarehouseMode.AUTOMATIC:
                self._log_shipped(shipment, mode=mode)
            else:
                log.info(
                    "shipment created", shipment_id=str(shipment.shipment_id), warehouse_id=warehouse_id, mode=mode
                )

    async def _answer_again(self, ctx: MessageContext, found: LoadedShipment) -> None:
        for _, event in found.history:
            if isinstance(event, ShipmentCreated | Shipped):
                await ctx.emit(event)
        shipment = found.shipment
        log.info("shipment answered again", shipment_id=str(shipment.shipment_id), status=str(shipment.status))

    def _ship_at_once(self, scratch: Shipment) -> list[Message]:
        """Automatic mode: everything is found, packed in one standard parcel and handed over. Decided on a
        scratch shipment (each step needs the state the previous one left), to be recorded together."""
        steps: list[Callable[[], list[Message]]] = [
            scratch.start_picking,
            lambda: scratch.confirm_picks({line.sku: line.quantity for line in scratch.lines}),
            lambda: scratch.pack([automatic_parcel(scratch.picked, self._config.grams_per_unit)]),
            lambda: scratch.ship(self.dispatch(scratch)),
        ]
        events: list[Message] = []
        for step in steps:
            produced = step()
            for event in produced:
                scratch.apply(event)
            events.extend(produced)
        return events

    def dispatch(self, shipment: Shipment) -> Dispatch:
        """The carrier, a fresh tracking number and the estimated delivery, as of now."""
        method = shipment.delivery_method or DeliveryMethod.STANDARD
        level = self._config.service_levels[method]
        tracking_number = level.carrier.tracking_number(self._entropy())
        return Dispatch(
            carrier=level.carrier.name,
            tracking_number=tracking_number,
            tracking_url=level.carrier.tracking_url(tracking_number),
            estimated_delivery=self._calendars.of(shipment.warehouse_id).estimated_delivery(
                method, self._clock(), level.transit_business_days
            ),
            service_level=method.value,
        )

    def _log_shipped(self, shipment: Shipment, mode: WarehouseMode | None = None) -> None:
        """`mode` when the shipment was created in the same step (automatic mode: one line, not two)."""
        log.info(
            "shipment handed to carrier",
            shipment_id=str(shipment.shipment_id),
            warehouse_id=shipment.warehouse_id,
            **({"created": True, "mode": mode} if mode is not None else {}),
            carrier=shipment.carrier,
            tracking_number=shipment.tracking_number,
            estimated_delivery=shipment.estimated_delivery.isoformat() if shipment.estimated_delivery else None,
        )

    async def cancel_shipment(self, ctx: MessageContext, command: CancelShipment) -> None:
        """All or nothing: when part of the order has left a warehouse, nothing is cancelled."""
        await self._repo.write_batch(ctx.session)  # it reads the order's shipments through the views
        loaded = await self._repo.load_of_order(ctx.session, ctx.registry, command.order_id)
        shipments = [found.shipment for found in loaded]
        gone = [s.shipment_id for s in shipments if s.status is not None and s.status.has_left_warehouse]
        if gone:
            await ctx.emit(
                ShipmentCancellationRefused(
                    order_id=command.order_id,
                    shipped_shipment_ids=gone,
                    reason="part of the order has left the warehouse already",
                )
            )
            log.info("shipment cancel refused", shipped=[str(s) for s in gone])
            return
        for found in loaded:
            await self._repo.save(ctx, found, found.shipment.cancel(command.reason))
        await ctx.emit(
            FulfilmentCancelled(
                order_id=command.order_id, shipment_ids=[s.shipment_id for s in shipments], reason=command.reason
            )
        )
        log.info("shipments cancelled", shipments=len(shipments), requested_by=command.requested_by)

    # ------------------------------------------------------------------ the warehouse's steps (manual mode)

    async def start_picking(self, ctx: MessageContext, shipment_id: UUID) -> Shipment:
        found = await self._existing(ctx, shipment_id)
        await self._repo.save(ctx, found, found.shipment.start_picking())
        return found.shipment

    async def confirm_picks(self, ctx: MessageContext, shipment_id: UUID, found: Mapping[str, int]) -> Shipment:
        loaded = await self._existing(ctx, shipment_id)
        shipment = loaded.shipment
        await self._repo.save(ctx, loaded, shipment.confirm_picks(found))
        if shipment.status is ShipmentStatus.FAILED:
            log.warning("nothing of the shipment was found; fulfilment failed", shipment_id=str(shipment_id))
        elif shipment.short:
            log.warning(
                "short pick: the shipment goes on with what was found",
                shipment_id=str(shipment_id),
                short=[(line.sku, line.quantity) for line in shipment.short],
            )
        return shipment

    async def pack(self, ctx: MessageContext, shipment_id: UUID, parcels: Sequence[Parcel]) -> Shipment:
        found = await self._existing(ctx, shipment_id)
        await self._repo.save(ctx, found, found.shipment.pack(parcels))
        return found.shipment

    async def ship(self, ctx: MessageContext, shipment_id: UUID) -> Shipment:
        found = await self._existing(ctx, shipment_id)
        shipment = found.shipment
        await self._repo.save(ctx, found, shipment.ship(self.dispatch(shipment)))
        self._log_shipped(shipment)
        return shipment

    async def carrier_update(
        self,
        ctx: MessageContext,
        carrier: str,
        tracking_number: str,
        status: ShipmentStatus,
        *,
        reported_at: datetime,
        update_id: str,
        location: str | None,
        reason: str | None,
    ) -> tuple[Shipment, list[Message]]:
        found = await self._repo.load_by_tracking_number(ctx.session, ctx.registry, carrier, tracking_number)
        if found is None:
            raise ShipmentNotFoundError(f"no {carrier} shipment with tracking number {tracking_number}")
        shipment = found.shipment
        shipment_id = shipment.shipment_id
        _bind_order(shipment.order_id)
        events = shipment.carrier_update(
            status, reported_at=reported_at, update_id=update_id, location=location, reason=reason
        )
        await self._repo.save(ctx, found, events)
        log.info(
            "carrier update",
            shipment_id=str(shipment_id),
            reported=status.value,
            status=str(shipment.status),
            duplicate=not events,
            superseded=bool(events) and bool(getattr(events[0], "superseded", False)),
        )
        return shipment, events

    # ------------------------------------------------------------------ returns

    async def authorise_return(self, ctx: MessageContext, command: AuthoriseReturn) -> None:
        """The warehouses expect the units back; a re-sent command gets the first answer again."""
        await self._repo.write_batch(ctx.session)  # it reads the order's shipments through the views
        returned = await self._returns.load(ctx.session, ctx.registry, command.return_id)
        if returned.exists:
            await ctx.emit(
                ReturnAuthorised(
                    order_id=returned.order_id or command.order_id, return_id=returned.return_id, lines=returned.lines
                )
            )
            return
        await self._returns.save(ctx, returned, returned.authorise(command.order_id, command.lines))
        log.info(
            "return authorised", return_id=str(command.return_id), units=sum(line.quantity for line in command.lines)
        )

    async def receive_return(self, ctx: MessageContext, return_id: UUID, received_by: str) -> Return:
        returned = await self._existing_return(ctx, return_id)
        await self._returns.save(ctx, returned, returned.receive(received_by))
        return returned

    async def inspect_return(
        self, ctx: MessageContext, return_id: UUID, sellable: Mapping[tuple[str, str], int], inspected_by: str
    ) -> Return:
        returned = await self._existing_return(ctx, return_id)
        await self._returns.save(ctx, returned, returned.inspect(sellable, inspected_by))
        log.info(
            "return inspected",
            return_id=str(return_id),
            sellable=sum(line.quantity for line in returned.sellable),
            unsellable=sum(line.quantity for line in returned.unsellable),
        )
        return returned

    async def _existing_return(self, ctx: MessageContext, return_id: UUID) -> Return:
        returned = await self._returns.load(ctx.session, ctx.registry, return_id)
        if not returned.exists:
            raise ReturnNotFoundError(f"no return {return_id}")
        _bind_order(returned.order_id)
        return returned

    async def _existing(self, ctx: MessageContext, shipment_id: UUID) -> LoadedShipment:
        found = await self._repo.load(ctx.session, ctx.registry, shipment_id)
        if not found.exists:
            raise ShipmentNotFoundError(f"no shipment {shipment_id}")
        _bind_order(found.shipment.order_id)
        return found


def _bind_order(order_id: UUID | None) -> None:
    """An API call's logs carry the order they concern, like a message's do (the runtime binds those)."""
    if order_id is not None:
        structlog.contextvars.bind_contextvars(order_id=str(order_id), correlation_id=str(order_id))


def _worth_another_attempt(exc: Exception) -> bool:
    return lost_a_race(exc) or isinstance(exc, IntegrityError)


class FulfilmentOperations:
    """Runs the API's use cases, each in a transaction of its own with the outbox, like a message would."""

    def __init__(self, db: Database, registry: MessageRegistry, handlers: FulfilmentHandlers) -> None:
        self._db = db
        self._handlers = handlers
        # Another writer got to the shipment first (or a tracking number collided): decide again.
        self._use_cases = UseCaseRunner(db, registry, SERVICE, retry_on=_worth_another_attempt)

    @property
    def handlers(self) -> FulfilmentHandlers:
        return self._handlers

    async def run(self, use_case: Callable[[MessageContext], Awaitable[T]]) -> T:
        # The use case binds the order it concerns to the logs; it is unbound afterwards.
        before = structlog.contextvars.get_contextvars()
        try:
            return await self._use_cases.run(use_case)
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**before)

    async def read(self, query: Callable[[Any], Awaitable[T]]) -> T:
        async with self._db.transaction() as session:
            return await query(session)


__all__ = [
    "FulfilmentConfig",
    "FulfilmentHandlers",
    "FulfilmentOperations",
    "ReturnNotFoundError",
    "ShipmentNotFoundError",
    "ShipmentStateError",
    "WarehouseMode",
]
