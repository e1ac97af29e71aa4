"""When each order was placed, for the performance report's placed-to-shipped time: every `OrderPlaced` on
the orders topic records the order's placing time (its event's `occurred_at`) in `order_placements`.

A consumer group of its own (`fulfilment-service-orders`), apart from the commands, so a backlog on the
busy orders topic never delays a shipment; every other type on the topic is skipped without touching the
database. Idempotent twice over: the runtime's inbox skips a redelivered message, and the table keeps the
first placing time of an order.
"""

from fulfilment_service.adapters.performance_projection import OrderPlacements
from oms_events import topics
from oms_events.messages import OrderPlaced
from oms_runtime.host import ConsumerSpec
from oms_runtime.logging import get_logger
from oms_runtime.messaging import HandlerMap, MessageContext

log = get_logger(__name__)

PLACEMENTS_GROUP = "fulfilment-service-orders"


class PlacementRecorder:
    def __init__(self, placements: OrderPlacements | None = None) -> None:
        self._placements = placements or OrderPlacements()

    def handler_map(self) -> HandlerMap:
        handlers = HandlerMap()
        handlers.register(OrderPlaced, self.order_placed)
        return handlers

    async def order_placed(self, ctx: MessageContext, event: OrderPlaced) -> None:
        assert ctx.envelope is not None, "placements come from the orders topic"
        if not await self._placements.record(
            ctx.session, event.order_id, event.channel.value, ctx.envelope.occurred_at
        ):
            log.info("order placing recorded before")


def placements_consumer(recorder: PlacementRecorder | None = None) -> ConsumerSpec:
    return ConsumerSpec(
        group_id=PLACEMENTS_GROUP,
        topics=[topics.ORDERS_EVENTS],
        handlers=(recorder or PlacementRecorder()).handler_map(),
    )
