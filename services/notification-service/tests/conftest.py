"""Fixtures of notification-service's tests: realistic order events (so test modules stay independent), a
real SMTP server, a local SMS provider and the harness over them (on the module's own `db`)."""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from uuid import uuid4

import pytest
from notification_harness import Harness
from notification_smtp import CollectingSmtp, Smtp, free_port

from notification_service.domain.notifications import NotifyingEvent
from notification_service.testing import LocalSmsProvider
from oms_events.messages import (
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentDeclined,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderRejected,
    OrderReturnRefunded,
    OrderShipped,
    OrderShortShipRefunded,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentOutForDelivery,
)
from oms_events.values import Address, Allocation, Channel, Customer, DeliveryMethod, OrderLine
from oms_runtime.db import Database


@pytest.fixture
def placed() -> OrderPlaced:
    """A web order of two lines (2 x 19.90 + 1 x 12.50 = EUR 52.30), new order id every time."""
    lines = [
        OrderLine(sku="SKU-TSHIRT-RED-M", quantity=2, unit_price_minor=1990),
        OrderLine(sku="SKU-MUG-BLUE", quantity=1, unit_price_minor=1250),
    ]
    return OrderPlaced(
        order_id=uuid4(),
        channel=Channel.WEB,
        external_reference="WEB-100234",
        customer=Customer(
            customer_id=f"C-{uuid4().hex[:8]}", name="Jane Doe", email="jane.doe@example.com", phone="+49 30 1234567"
        ),
        lines=lines,
        currency="EUR",
        total_minor=sum(line.quantity * line.unit_price_minor for line in lines),
        shipping_address=Address(
            name="Jane Doe", line1="Invalidenstraße 117", city="Berlin", postal_code="10115", country="DE"
        ),
        delivery_method=DeliveryMethod.STANDARD,
    )


@pytest.fixture
def confirmed(placed: OrderPlaced) -> OrderConfirmed:
    return OrderConfirmed(order_id=placed.order_id, payment_id=uuid4(), amount_minor=5230, currency="EUR")


@pytest.fixture
def shipped(placed: OrderPlaced) -> OrderShipped:
    return OrderShipped(
        order_id=placed.order_id,
        shipment_id=uuid4(),
        warehouse_id="WH-BER",
        carrier="DHL",
        tracking_number="JJD000390007713",
        tracking_url="https://tracking.example/track?id=JJD000390007713&lang=en",
        estimated_delivery=date(2025, 3, 14),
    )


@pytest.fixture
def rejected(placed: OrderPlaced) -> OrderRejected:
    return OrderRejected(
        order_id=placed.order_id,
        reason_code="out_of_stock",
        reason="We do not have enough SKU-LIMITED in stock right now.",
    )


@pytest.fixture
def cancelled(placed: OrderPlaced) -> OrderCancelled:
    return OrderCancelled(
        order_id=placed.order_id,
        reason_code="requested",
        customer_message="You asked us to cancel the order before it was shipped.",
        note="customer called the phone desk, ticket 4711",
        requested_by="customer",
    )


@pytest.fixture
def refunded(placed: OrderPlaced) -> OrderPaymentRefunded:
    return OrderPaymentRefunded(order_id=placed.order_id, refund_id=uuid4(), amount_minor=2500, currency="EUR")


@pytest.fixture
def return_refunded(placed: OrderPlaced) -> OrderReturnRefunded:
    """Both T-shirts came back (2 x 19.90), shipped from two warehouses."""
    return OrderReturnRefunded(
        order_id=placed.order_id,
        return_id=uuid4(),
        refund_id=uuid4(),
        amount_minor=3980,
        currency="EUR",
        lines=[
            Allocation(sku="SKU-TSHIRT-RED-M", warehouse_id="WH-BER", quantity=1),
            Allocation(sku="SKU-TSHIRT-RED-M", warehouse_id="WH-HAM", quantity=1),
        ],
    )


@pytest.fixture
def short_ship_refunded(placed: OrderPlaced) -> OrderShortShipRefunded:
    """The mug (12.50) was not on the shelf."""
    return OrderShortShipRefunded(
        order_id=placed.order_id,
        shipment_id=uuid4(),
        refund_id=uuid4(),
        amount_minor=1250,
        currency="EUR",
        lines=[Allocation(sku="SKU-MUG-BLUE", warehouse_id="WH-BER", quantity=1)],
    )


@pytest.fixture
def delivery_failed(shipped: OrderShipped) -> ShipmentDeliveryFailed:
    return ShipmentDeliveryFailed(
        order_id=shipped.order_id,
        shipment_id=shipped.shipment_id,
        carrier=shipped.carrier,
        tracking_number=shipped.tracking_number,
        location="Berlin-Mitte depot",
        reported_at=datetime(2025, 3, 14, 16, 5, tzinfo=UTC),
        reason="Recipient not at home; card left",
    )


@pytest.fixture
def payment_declined(placed: OrderPlaced) -> OrderPaymentDeclined:
    return OrderPaymentDeclined(
        order_id=placed.order_id, reason_code="insufficient_funds", reason="The card issuer declined the payment."
    )


@pytest.fixture
def out_for_delivery(shipped: OrderShipped) -> ShipmentOutForDelivery:
    return ShipmentOutForDelivery(
        order_id=shipped.order_id,
        shipment_id=shipped.shipment_id,
        carrier=shipped.carrier,
        tracking_number=shipped.tracking_number,
        location="Berlin-Mitte depot",
        reported_at=datetime(2025, 3, 14, 7, 12, tzinfo=UTC),
    )


@pytest.fixture
def delivered(shipped: OrderShipped) -> ShipmentDelivered:
    return ShipmentDelivered(
        order_id=shipped.order_id,
        shipment_id=shipped.shipment_id,
        carrier=shipped.carrier,
        tracking_number=shipped.tracking_number,
        location="front door",
        reported_at=datetime(2025, 3, 14, 13, 40, tzinfo=UTC),
    )


@pytest.fixture
def every_event(
    placed: OrderPlaced,
    confirmed: OrderConfirmed,
    payment_declined: OrderPaymentDeclined,
    rejected: OrderRejected,
    cancelled: OrderCancelled,
    shipped: OrderShipped,
    out_for_delivery: ShipmentOutForDelivery,
    delivered: ShipmentDelivered,
    refunded: OrderPaymentRefunded,
    return_refunded: OrderReturnRefunded,
    short_ship_refunded: OrderShortShipRefunded,
    delivery_failed: ShipmentDeliveryFailed,
) -> list[NotifyingEvent]:
    """One event of every type that sends a message, in the order of NotificationKind (the refunds share one)."""
    return [
        placed,
        confirmed,
        payment_declined,
        rejected,
        cancelled,
        shipped,
        out_for_delivery,
        delivered,
        refunded,
        return_refunded,
        short_ship_refunded,
        delivery_failed,
    ]


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp(CollectingSmtp(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def provider() -> Iterator[LocalSmsProvider]:
    with LocalSmsProvider() as local:
        yield local


@pytest.fixture
def harness(db: Database, smtp: Smtp, provider: LocalSmsProvider) -> Harness:
    """Needs a `db` fixture of the test module (each module keeps its own schema)."""
    return Harness(db, smtp, provider)
