"""Earlier schema versions of messages, kept as classes so that their JSON Schemas stay generated and
published beside the current ones (libs/events/schemas/<Type>.v<N>.json): a subscriber still on an old
version keeps its reference, and the compatibility check can see that every released version is still there.

Nothing sends these any more; stored and published copies are read as the current version through
`oms_events.upcasters`. A class here is the released version frozen: never change one.
"""

from typing import ClassVar

from pydantic import ConfigDict

from oms_events import topics
from oms_events.messages import ContractMessage, Event


class OrderCancelledV1(Event):
    """Every step done for the order was undone: stock released and any payment refunded."""

    model_config = ConfigDict(title="OrderCancelled")
    message_type: ClassVar[str] = "OrderCancelled"
    schema_version: ClassVar[int] = 1
    topic = topics.ORDERS_EVENTS

    reason: str
    requested_by: str


PREVIOUS_VERSIONS: tuple[type[ContractMessage], ...] = (OrderCancelledV1,)
"""Every earlier version of a message that was released, one class each."""
