"""Use cases of fulfilment-service: ship an order (automatic mode: pick, pack and hand over at once)."""

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import uuid4

from fulfilment_service.adapters.shipment_repository import ShipmentRepository
from fulfilment_service.domain.dispatch import WarehouseCalendars
from fulfilment_service.domain.shipment import STREAM_TYPE, OrderShipments, plan_shipments, stream_id, warehouses_of
from oms_events.messages import ShipOrder
from oms_runtime.eventstore import EventStore
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext

log = get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def random_entropy() -> int:
    return secrets.randbits(128)


class FulfilmentHandlers:
    def __init__(
        self,
        repository: ShipmentRepository,
        store: EventStore,
        calendars: WarehouseCalendars,
        *,
        clock: Callable[[], datetime] = utc_now,
        entropy: Callable[[], int] = random_entropy,
    ) -> None:
        self._repo = repository
        self._store = store
        self._calendars = calendars
        self._clock = clock
        self._entropy = entropy

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(ShipOrder, self.ship_order)
        return handlers

    async def ship_order(self, ctx: MessageContext, command: ShipOrder) -> None:
        # The shipping address is personal data: it goes to the carrier, never to the logs.
        sid = stream_id(command.order_id)
        stored = await self._store.load(ctx.session, sid)
        state = OrderShipments.rebuild(command.order_id, (ctx.registry.decode(e.envelope) for e in stored))
        if state.has_shipped:
            # A re-sent command gets the shipments the first one made, and nothing ships twice.
            shipped_from = sorted(s.warehouse_id for s in state.shipped)
            if shipped_from != warehouses_of(command.allocations):
                log.warning(
                    "ship order re-sent with other warehouses; answering with the shipments made",
                    shipped_from=shipped_from,
                    requested_from=warehouses_of(command.allocations),
                )
            for shipped in state.shipped:
                await ctx.emit(shipped)
            log.info("shipments answered again", shipments=len(state.shipped))
            return
        now = self._clock()
        events = plan_shipments(
            command.order_id,
            command.allocations,
            command.delivery_method,
            now=now,
            calendars=self._calendars,
            new_shipment_id=uuid4,
            new_entropy=self._entropy,
        )
        # A concurrent consumer that shipped first makes this append fail; the retry answers again.
        await ctx.record(self._store, sid, STREAM_TYPE, state.version, events)
        await self._repo.add_shipped(ctx.session, events, shipped_at=now)
        for event in events:
            log.info(
                "shipment handed to carrier",
                shipment_id=str(event.shipment_id),
                warehouse_id=event.warehouse_id,
                carrier=event.carrier,
                tracking_number=event.tracking_number,
                estimated_delivery=event.estimated_delivery.isoformat(),
            )
