"""The Order aggregate and the orchestrated order saga's decisions. Pure: no I/O.

State is rebuilt from the order's events; every decision returns the events to record and the
commands to send, and the caller commits both in one transaction. A reply that does not fit the
order's current state (a duplicate, or one that arrives late) decides nothing.

    placed --StockReserved--> awaiting_payment --PaymentCaptured--> confirmed --Shipped--> shipped
       |                          |
       | StockReservationFailed   | PaymentDeclined: ReleaseStock
       v                          v
    rejected <--StockReleased-- releasing_stock
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from uuid import UUID

from oms_events.messages import (
    CapturePayment,
    Command,
    Event,
    Message,
    OrderConfirmed,
    OrderPaymentDeclined,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    OrderStockReleased,
    OrderStockReserved,
    PaymentCaptured,
    PaymentDeclined,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    Shipped,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from oms_events.values import Allocation, StockLine


class OrderStatus(StrEnum):
    PLACED = "placed"
    AWAITING_PAYMENT = "awaiting_payment"
    CONFIRMED = "confirmed"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    RELEASING_STOCK = "releasing_stock"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in (OrderStatus.SHIPPED, OrderStatus.REJECTED)


class OrderStateError(Exception):
    """A decision was asked of an order that cannot take it."""


@dataclass(frozen=True)
class Decision:
    events: tuple[Event, ...] = ()
    commands: tuple[Command, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.events and not self.commands


NOTHING = Decision()


@dataclass(frozen=True)
class ShipmentInfo:
    shipment_id: UUID
    warehouse_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date


@dataclass
class Order:
    order_id: UUID
    version: int = 0
    status: OrderStatus | None = None
    placed: OrderPlaced | None = None
    reservation_id: UUID | None = None
    allocations: tuple[Allocation, ...] = ()
    payment_id: UUID | None = None
    shipments: list[ShipmentInfo] = field(default_factory=list)
    rejection_reason: str | None = None

    # ------------------------------------------------------------------ state

    @classmethod
    def from_history(cls, order_id: UUID, events: Iterable[Message]) -> "Order":
        order = cls(order_id)
        for event in events:
            order.apply(event)
        return order

    @property
    def exists(self) -> bool:
        return self.placed is not None

    def apply(self, event: Message) -> None:
        match event:
            case OrderPlaced():
                self.placed = event
                self.status = OrderStatus.PLACED
            case OrderStockReserved():
                self.reservation_id = event.reservation_id
                self.allocations = tuple(event.allocations)
                self.status = OrderStatus.AWAITING_PAYMENT
            case OrderConfirmed():
                self.payment_id = event.payment_id
                self.status = OrderStatus.CONFIRMED
            case OrderPaymentDeclined():
                self.rejection_reason = event.reason
                self.status = OrderStatus.RELEASING_STOCK
            case OrderStockReleased():
                pass
            case OrderShipped():
                self.shipments.append(
                    ShipmentInfo(
                        event.shipment_id,
                        event.warehouse_id,
                        event.carrier,
                        event.tracking_number,
                        event.tracking_url,
                        event.estimated_delivery,
                    )
                )
                self.status = OrderStatus.SHIPPED if not self.warehouses_to_ship else OrderStatus.PARTIALLY_SHIPPED
            case OrderRejected():
                self.rejection_reason = event.reason
                self.status = OrderStatus.REJECTED
            case _:
                raise OrderStateError(f"{type(event).__name__} is not an order event")
        self.version += 1

    @property
    def warehouses_to_ship(self) -> set[str]:
        return {a.warehouse_id for a in self.allocations} - {s.warehouse_id for s in self.shipments}

    def _require(self) -> OrderPlaced:
        if self.placed is None:
            raise OrderStateError(f"order {self.order_id} does not exist")
        return self.placed

    # ------------------------------------------------------------------ decisions

    @staticmethod
    def place(placed: OrderPlaced) -> Decision:
        """A new order: record it and ask inventory for its stock."""
        return Decision(
            events=(placed,),
            commands=(
                ReserveStock(
                    order_id=placed.order_id,
                    lines=[StockLine(sku=line.sku, quantity=line.quantity) for line in placed.lines],
                ),
            ),
        )

    def on_stock_reserved(self, reply: StockReserved, payment_token: str) -> Decision:
        placed = self._require()
        if self.status is not OrderStatus.PLACED:
            return NOTHING
        return Decision(
            events=(
                OrderStockReserved(
                    order_id=self.order_id, reservation_id=reply.reservation_id, allocations=reply.allocations
                ),
            ),
            commands=(
                CapturePayment(
                    order_id=self.order_id,
                    customer_id=placed.customer.customer_id,
                    amount_minor=placed.total_minor,
                    currency=placed.currency,
                    payment_token=payment_token,
                ),
            ),
        )

    def on_stock_reservation_failed(self, reply: StockReservationFailed) -> Decision:
        self._require()
        if self.status is not OrderStatus.PLACED:
            return NOTHING
        skus = ", ".join(s.sku for s in reply.shortages) or "some items"
        return Decision(
            events=(
                OrderRejected(
                    order_id=self.order_id,
                    reason_code="out_of_stock",
                    reason=f"Sorry, we do not have enough stock of {skus} to fulfil your order.",
                ),
            )
        )

    def on_payment_captured(self, reply: PaymentCaptured) -> Decision:
        placed = self._require()
        if self.status is not OrderStatus.AWAITING_PAYMENT:
            return NOTHING
        return Decision(
            events=(
                OrderConfirmed(
                    order_id=self.order_id,
                    payment_id=reply.payment_id,
                    amount_minor=reply.amount_minor,
                    currency=reply.currency,
                ),
            ),
            commands=(
                ShipOrder(
                    order_id=self.order_id,
                    allocations=list(self.allocations),
                    shipping_address=placed.shipping_address,
                    delivery_method=placed.delivery_method,
                ),
            ),
        )

    def on_payment_declined(self, reply: PaymentDeclined) -> Decision:
        self._require()
        if self.status is not OrderStatus.AWAITING_PAYMENT:
            return NOTHING
        return Decision(
            events=(OrderPaymentDeclined(order_id=self.order_id, reason_code=reply.reason_code, reason=reply.reason),),
            commands=(ReleaseStock(order_id=self.order_id, reason=f"payment declined: {reply.reason_code}"),),
        )

    def on_stock_released(self, reply: StockReleased) -> Decision:
        self._require()
        if self.status is not OrderStatus.RELEASING_STOCK:
            return NOTHING
        return Decision(
            events=(
                OrderStockReleased(order_id=self.order_id, reservation_id=reply.reservation_id),
                OrderRejected(
                    order_id=self.order_id,
                    reason_code="payment_declined",
                    reason="Your payment was declined, so we could not complete your order.",
                ),
            )
        )

    def on_shipped(self, reply: Shipped) -> Decision:
        self._require()
        if self.status not in (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED):
            return NOTHING
        if reply.warehouse_id not in self.warehouses_to_ship:
            return NOTHING
        return Decision(
            events=(
                OrderShipped(
                    order_id=self.order_id,
                    shipment_id=reply.shipment_id,
                    warehouse_id=reply.warehouse_id,
                    carrier=reply.carrier,
                    tracking_number=reply.tracking_number,
                    tracking_url=reply.tracking_url,
                    estimated_delivery=reply.estimated_delivery,
                ),
            )
        )
