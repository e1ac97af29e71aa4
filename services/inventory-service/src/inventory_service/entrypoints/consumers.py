"""What inventory-service listens to: its commands, and shipments (to take shipped stock out)."""

from inventory_service.handlers import InventoryHandlers
from oms_events import topics
from oms_runtime.host import ConsumerSpec


def consumers(handlers: InventoryHandlers, group_id: str) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            group_id=group_id,
            topics=[topics.INVENTORY_COMMANDS, topics.FULFILMENT_EVENTS],
            handlers=handlers.handler_map(),
        )
    ]
