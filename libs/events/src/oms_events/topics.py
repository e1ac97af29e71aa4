"""Every Kafka topic of the OMS, named once.

Events topics carry past-tense facts of one domain, commands topics carry imperative requests to
one participant, the intake topic carries order submissions from upstream systems, and each
consuming service has a dead-letter topic for messages it could not process.

Every message about one order is keyed by the order id, so one partition carries it in order.
"""

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    description: str


_WEEK_MS: Final = 7 * 24 * 3600 * 1000

ORDERS_EVENTS: Final = "oms.orders.events"
INVENTORY_EVENTS: Final = "oms.inventory.events"
PAYMENTS_EVENTS: Final = "oms.payments.events"
FULFILMENT_EVENTS: Final = "oms.fulfilment.events"
NOTIFICATIONS_EVENTS: Final = "oms.notifications.events"

INVENTORY_COMMANDS: Final = "oms.inventory.commands"
PAYMENTS_COMMANDS: Final = "oms.payments.commands"
FULFILMENT_COMMANDS: Final = "oms.fulfilment.commands"

ORDERS_INTAKE: Final = "oms.orders.intake"

UPSTREAM_TOPICS: Final = frozenset({ORDERS_INTAKE})
"""Topics that systems outside the OMS write to: what their records' headers say is not trusted (a
consumer parses the value to know its type); every other topic is written by one OMS service only (its
Kafka ACLs)."""

SERVICES: Final = (
    "order-service",
    "inventory-service",
    "payment-service",
    "fulfilment-service",
    "notification-service",
)


def dead_letter_topic(service: str) -> str:
    """The dead-letter topic of one consuming service."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return f"oms.{service.removesuffix('-service')}.dlq"


DEFAULT_PARTITIONS: Final = 12
"""Partitions of a keyed topic unless the deployment says otherwise (the services' KAFKA_TOPIC_PARTITIONS
setting): the most replicas of one consumer group that get work. A spec with this count takes the setting;
a spec with another count (the dead-letter topics' one) keeps its own."""

ALL_TOPICS: Final[tuple[TopicSpec, ...]] = (
    TopicSpec(ORDERS_EVENTS, DEFAULT_PARTITIONS, _WEEK_MS, "Order lifecycle events"),
    TopicSpec(INVENTORY_EVENTS, DEFAULT_PARTITIONS, _WEEK_MS, "Stock reservation events"),
    TopicSpec(PAYMENTS_EVENTS, DEFAULT_PARTITIONS, _WEEK_MS, "Payment events"),
    TopicSpec(FULFILMENT_EVENTS, DEFAULT_PARTITIONS, _WEEK_MS, "Shipment events"),
    TopicSpec(NOTIFICATIONS_EVENTS, DEFAULT_PARTITIONS, _WEEK_MS, "Customer notification events"),
    TopicSpec(INVENTORY_COMMANDS, DEFAULT_PARTITIONS, _WEEK_MS, "Commands to inventory-service"),
    TopicSpec(PAYMENTS_COMMANDS, DEFAULT_PARTITIONS, _WEEK_MS, "Commands to payment-service"),
    TopicSpec(FULFILMENT_COMMANDS, DEFAULT_PARTITIONS, _WEEK_MS, "Commands to fulfilment-service"),
    TopicSpec(ORDERS_INTAKE, DEFAULT_PARTITIONS, _WEEK_MS, "Order submissions from upstream channels"),
    *(TopicSpec(dead_letter_topic(s), 1, 4 * _WEEK_MS, f"Dead letters of {s}") for s in SERVICES),
)
