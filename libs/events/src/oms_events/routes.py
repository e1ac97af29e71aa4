"""Who sends and who receives each message on each topic: the routes of the contract.

The AsyncAPI document's `operations`, the Kubernetes manifests' consumer groups and the KafkaUser ACLs all
read this one table, so that the description of who talks to whom is written once. It is not a free-hand
list: tests/deploy/test_event_routes.py builds every service's composition root and checks that the
consumer groups, their topics and the message types their handlers take are exactly `CONSUMERS`, and that
every message a service's code constructs is on a topic `PUBLISHERS` lets it send to.

The contract package cannot import the services (they depend on it), which is why the table lives here
and the check lives beside the services.
"""

from dataclasses import dataclass
from typing import Final

from oms_events import topics
from oms_events.messages import MESSAGE_TYPES
from oms_events.topics import SERVICES, dead_letter_topic

SALES_CHANNELS: Final = "sales-channel"
"""Upstream systems (web shop, marketplace connectors, phone desk, store POS) that submit orders."""

OPS_CLI: Final = "oms-cli"
"""The operators' `oms` CLI: reads dead letters and redrives them to the topic they came from."""


@dataclass(frozen=True)
class ConsumerGroup:
    """One consumer group of a service: the topics it subscribes and the message types it handles."""

    service: str
    group_id: str
    topics: tuple[str, ...]
    message_types: frozenset[str]


EVENTS_TOPICS: Final = (
    topics.ORDERS_EVENTS,
    topics.INVENTORY_EVENTS,
    topics.PAYMENTS_EVENTS,
    topics.FULFILMENT_EVENTS,
    topics.NOTIFICATIONS_EVENTS,
)
"""Every domain's events topic: what other teams may subscribe to (commands and intake are internal)."""

WEBHOOK_EVENT_TYPES: Final = frozenset(
    cls.message_type for cls in MESSAGE_TYPES if cls.message_kind == "event" and cls.topic in EVENTS_TOPICS
)
"""What a webhook subscription may ask for: every event on an events topic."""

WEBHOOKS_GROUP: Final = "notification-service-webhooks"
"""notification-service's webhook deliveries: a group of its own, so their progress is independent of email and SMS."""


def _group(service: str, group_id: str, topic_names: tuple[str, ...], *types: str) -> ConsumerGroup:
    return ConsumerGroup(service, group_id, topic_names, frozenset(types))


CONSUMERS: Final[tuple[ConsumerGroup, ...]] = (
    _group(
        "order-service",
        "order-service",
        (topics.INVENTORY_EVENTS, topics.PAYMENTS_EVENTS, topics.FULFILMENT_EVENTS),
        "StockReserved",
        "StockReservationFailed",
        "StockReleased",
        "StockBackordered",
        "ReservationExpired",
        "ItemsRestocked",
        "PaymentCaptured",
        "PaymentDeclined",
        "PaymentRefunded",
        "PaymentRefundFailed",
        "PaymentReviewRequired",
        "Shipped",
        "ShipmentCreated",
        "ShipmentPickingStarted",
        "ShipmentPicked",
        "ShipmentPacked",
        "ShipmentInTransit",
        "ShipmentOutForDelivery",
        "ShipmentDelivered",
        "ShipmentDeliveryFailed",
        "ShipmentReturnedToSender",
        "FulfilmentFailed",
        "FulfilmentCancelled",
        "ShipmentCancelled",
        "ShipmentCancellationRefused",
        "ReturnAuthorised",
        "ReturnReceived",
        "ReturnInspected",
    ),
    _group("order-service", "order-service-intake", (topics.ORDERS_INTAKE,), "SubmitOrder"),
    _group(
        "inventory-service",
        "inventory-service",
        (topics.INVENTORY_COMMANDS, topics.FULFILMENT_EVENTS, topics.PAYMENTS_EVENTS),
        "ReserveStock",
        "ReleaseStock",
        "RestockItems",
        "Shipped",
        "PaymentCaptured",
    ),
    _group("inventory-service", "inventory-service-availability", (topics.INVENTORY_EVENTS,), "StockLevelChanged"),
    _group("inventory-service", "inventory-service-demand", (topics.ORDERS_EVENTS,), "OrderPlaced"),
    _group("payment-service", "payment-service", (topics.PAYMENTS_COMMANDS,), "CapturePayment", "RefundPayment"),
    _group(
        "fulfilment-service",
        "fulfilment-service",
        (topics.FULFILMENT_COMMANDS,),
        "ShipOrder",
        "CancelShipment",
        "AuthoriseReturn",
    ),
    _group(
        "notification-service",
        "notification-service",
        (topics.ORDERS_EVENTS, topics.FULFILMENT_EVENTS),
        "OrderPlaced",
        "OrderConfirmed",
        "OrderShipped",
        "OrderRejected",
        "OrderCancelled",
        "OrderPaymentDeclined",
        "OrderPaymentRefunded",
        "OrderShortShipRefunded",
        "OrderReturnRefunded",
        "ShipmentOutForDelivery",
        "ShipmentDelivered",
        "ShipmentDeliveryFailed",
    ),
    _group("notification-service", WEBHOOKS_GROUP, EVENTS_TOPICS, *sorted(WEBHOOK_EVENT_TYPES)),
)
"""Every consumer group the services run (checked against their composition roots)."""

PUBLISHERS: Final[dict[str, str]] = {
    topics.ORDERS_EVENTS: "order-service",
    topics.INVENTORY_EVENTS: "inventory-service",
    topics.PAYMENTS_EVENTS: "payment-service",
    topics.FULFILMENT_EVENTS: "fulfilment-service",
    topics.NOTIFICATIONS_EVENTS: "notification-service",
    # The saga in order-service is the one sender of commands.
    topics.INVENTORY_COMMANDS: "order-service",
    topics.PAYMENTS_COMMANDS: "order-service",
    topics.FULFILMENT_COMMANDS: "order-service",
    topics.ORDERS_INTAKE: SALES_CHANNELS,
}
"""The one sender of every topic but the dead-letter ones: each domain's events topic is written by the
service that owns the domain, every commands topic by the saga (checked against the code: every message a
service constructs is on a topic it sends to)."""


def consumer_groups(service: str) -> tuple[ConsumerGroup, ...]:
    return tuple(group for group in CONSUMERS if group.service == service)


def consuming_services() -> tuple[str, ...]:
    """The services that run at least one consumer group (each has a dead-letter topic it writes)."""
    return tuple(s for s in SERVICES if consumer_groups(s))


def topics_sent_by(service: str) -> tuple[str, ...]:
    """Every topic `service` writes: those it publishes, its dead-letter topic if it consumes anything."""
    sent = [topic for topic, sender in PUBLISHERS.items() if sender == service]
    if service in consuming_services():
        sent.append(dead_letter_topic(service))
    return tuple(sent)


def topics_received_by(service: str) -> tuple[str, ...]:
    """Every topic one of `service`'s consumer groups subscribes, in first-subscribed order."""
    return tuple(dict.fromkeys(t for group in consumer_groups(service) for t in group.topics))


def message_types_on(topic: str) -> tuple[str, ...]:
    return tuple(sorted(cls.message_type for cls in MESSAGE_TYPES if cls.topic == topic))


__all__ = [
    "CONSUMERS",
    "OPS_CLI",
    "PUBLISHERS",
    "SALES_CHANNELS",
    "ConsumerGroup",
    "consumer_groups",
    "consuming_services",
    "message_types_on",
    "topics_received_by",
    "topics_sent_by",
]
