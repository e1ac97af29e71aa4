"""What order-service listens to: the replies of every saga participant."""

from oms_events import topics
from oms_runtime.host import ConsumerSpec
from order_service.handlers import OrderSaga


def consumers(saga: OrderSaga, group_id: str) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            group_id=group_id,
            topics=[topics.INVENTORY_EVENTS, topics.PAYMENTS_EVENTS, topics.FULFILMENT_EVENTS],
            handlers=saga.handler_map(),
        )
    ]
