"""What payment-service listens to: its commands."""

from oms_events import topics
from oms_runtime.host import ConsumerSpec
from payment_service.handlers import PaymentHandlers


def consumers(handlers: PaymentHandlers, group_id: str) -> list[ConsumerSpec]:
    return [ConsumerSpec(group_id=group_id, topics=[topics.PAYMENTS_COMMANDS], handlers=handlers.handler_map())]
