"""What notification-service listens to: the order lifecycle events and the carrier's delivery updates."""

from notification_service.handlers import NotificationHandlers
from oms_events import topics
from oms_runtime.host import ConsumerSpec


def consumers(handlers: NotificationHandlers, group_id: str) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            group_id=group_id,
            topics=[topics.ORDERS_EVENTS, topics.FULFILMENT_EVENTS],
            handlers=handlers.handler_map(),
        )
    ]
