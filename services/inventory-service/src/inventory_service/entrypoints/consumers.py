"""What inventory-service listens to.

- Its commands (reserve, release, restock), shipments (to take shipped stock out) and captured payments (a
  paid reservation no longer expires), in the service's group.
- Its own stock events, in a group of their own, to keep the availability view in Redis current.
"""

from inventory_service.availability import AvailabilityProjection
from inventory_service.handlers import InventoryHandlers
from oms_events import topics
from oms_runtime.host import ConsumerSpec

AVAILABILITY_GROUP = "inventory-service-availability"


def consumers(handlers: InventoryHandlers, projection: AvailabilityProjection, group_id: str) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            group_id=group_id,
            topics=[topics.INVENTORY_COMMANDS, topics.FULFILMENT_EVENTS, topics.PAYMENTS_EVENTS],
            handlers=handlers.handler_map(),
        ),
        ConsumerSpec(group_id=AVAILABILITY_GROUP, topics=[topics.INVENTORY_EVENTS], handlers=projection.handler_map()),
    ]
