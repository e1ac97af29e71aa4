"""Builders shared by the order-service unit tests."""

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select

from oms_events import default_registry
from oms_events.messages import (
    CapturePayment,
    OrderPlaced,
    PaymentCaptured,
    Shipped,
    StockReserved,
)
from oms_events.values import Address, Allocation, Channel, Customer, DeliveryMethod, OrderLine
from oms_runtime.db import Database
from oms_runtime.eventstore import EventStore
from order_service.adapters.order_repository import OrderRepository
from order_service.adapters.read_models import read_models
from order_service.adapters.tables import saga_steps
from order_service.domain.order import Decision, Order, OrderStatus


def placed_order(order_id: object = None) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id or uuid4(),
        channel=Channel.MARKETPLACE,
        external_reference="MP-1",
        customer=Customer(customer_id="c-1", name="Jane", email="jane@example.com"),
        lines=[
            OrderLine(sku="SKU-A", quantity=2, unit_price_minor=500),
            OrderLine(sku="SKU-B", quantity=1, unit_price_minor=1000),
        ],
        currency="EUR",
        total_minor=2000,
        shipping_address=Address(name="Jane", line1="Main 1", city="Berlin", postal_code="10115", country="DE"),
        delivery_method=DeliveryMethod.EXPEDITED,
    )


def status(order: Order) -> OrderStatus | None:
    return order.status


def run(order: Order, decision: Decision) -> Decision:
    for event in decision.events:
        order.apply(event)
    return decision


def new_order() -> Order:
    """A placed order, its stock not reserved yet."""
    placed = placed_order()
    order = Order(placed.order_id)
    run(order, Order.place(placed))
    return order


def stock_reserved(order: Order) -> StockReserved:
    return StockReserved(
        order_id=order.order_id,
        reservation_id=uuid4(),
        allocations=[Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2)],
    )


def shipped(order: Order, warehouse: str) -> Shipped:
    return Shipped(
        order_id=order.order_id,
        shipment_id=uuid4(),
        warehouse_id=warehouse,
        carrier="DHL",
        tracking_number="JD000",
        tracking_url="https://track.example/JD000",
        estimated_delivery=date(2026, 12, 1),
    )


def reserved_order(allocations: list[Allocation] | None = None) -> tuple[Order, StockReserved]:
    order = new_order()
    reply = StockReserved(
        order_id=order.order_id,
        reservation_id=uuid4(),
        allocations=allocations
        or [
            Allocation(sku="SKU-A", warehouse_id="WH-1", quantity=2),
            Allocation(sku="SKU-B", warehouse_id="WH-1", quantity=1),
        ],
    )
    decision = run(order, order.on_stock_reserved(reply, "tok_approve"))
    assert status(order) is OrderStatus.AWAITING_PAYMENT
    [capture] = decision.commands
    assert isinstance(capture, CapturePayment)
    assert capture.amount_minor == 2000
    assert capture.payment_token == "tok_approve"
    return order, reply


def captured(order: Order) -> PaymentCaptured:
    return PaymentCaptured(
        order_id=order.order_id, payment_id=uuid4(), amount_minor=2000, currency="EUR", gateway_reference="g"
    )


async def saga_row(db: Database, order_id: UUID) -> dict[str, Any] | None:
    """The order's row in saga_steps (the command it waits on a reply to), if it has one."""
    async with db.transaction() as session:
        row = (await session.execute(select(saga_steps).where(saga_steps.c.order_id == order_id))).mappings().first()
        return dict(row) if row else None


def repository() -> OrderRepository:
    """The repository as the service builds it, with the read models it keeps (the sales report's too)."""
    models = read_models()
    return OrderRepository(EventStore(), default_registry(), timedelta(seconds=60), models.summaries, models.others)
