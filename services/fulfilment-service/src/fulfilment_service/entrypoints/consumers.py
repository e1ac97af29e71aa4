"""What fulfilment-service listens to: its commands."""

from fulfilment_service.handlers import FulfilmentHandlers
from oms_events import topics
from oms_runtime.host import ConsumerSpec


def consumers(handlers: FulfilmentHandlers, group_id: str) -> list[ConsumerSpec]:
    return [ConsumerSpec(group_id=group_id, topics=[topics.FULFILMENT_COMMANDS], handlers=handlers.handler_map())]
