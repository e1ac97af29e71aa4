"""What order-service listens to: the replies of every saga participant, and the intake topic."""

from oms_events import topics
from oms_runtime.host import ConsumerSpec
from order_service.handlers import OrderIntake, OrderSaga

INTAKE_GROUP = "order-service-intake"


def consumers(saga: OrderSaga, group_id: str, intake: OrderIntake | None = None) -> list[ConsumerSpec]:
    """The saga's consumer (group `group_id`) and the intake consumer (group `order-service-intake`).

    The intake consumer places orders through the same repository as the saga unless `intake` is given.
    """
    intake = intake or OrderIntake(saga.repository)
    return [
        ConsumerSpec(
            group_id=group_id,
            topics=[topics.INVENTORY_EVENTS, topics.PAYMENTS_EVENTS, topics.FULFILMENT_EVENTS],
            handlers=saga.handler_map(),
        ),
        ConsumerSpec(
            group_id=INTAKE_GROUP,
            topics=[topics.ORDERS_INTAKE],
            handlers=intake.handler_map(),
            rejection_handler=intake.on_invalid_submission,
        ),
    ]
