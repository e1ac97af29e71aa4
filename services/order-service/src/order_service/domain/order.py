"""The Order aggregate and the orchestrated order saga's decisions. Pure: no I/O.

State is rebuilt from the order's events; every decision returns the events to record and the
commands to send, and the caller commits both in one transaction. A reply that does not fit the
order's current state (a duplicate, or one that arrives late) decides nothing.

    placed --StockReserved--> awaiting_payment --PaymentCaptured--> confirmed --Shipped--> shipped
       |                          |
       | StockReservationFailed   | PaymentDeclined: ReleaseStock
       v                          v
    rejected <--StockReleased-- releasing_stock

A cancel (before fulfilment starts) undoes what was done in reverse order: the payment is refunded
if it was captured, then the stock is released, then the order is `cancelled`. A reply that was in
flight when the cancel came (StockReserved, PaymentCaptured) is taken into account, never lost.
A step without a reply after every re-send is compensated (no stock answer: release and reject) or,
where the outcome is unknown or a compensation fails, parks the order in `needs_attention` until an
operator retries, skips or resolves it.

Holds stop an order before its payment. A risk rule (an amount threshold) puts the order `on_hold`
when its stock is reserved, instead of capturing; an operator may hold an order while it is `placed`
(the hold waits for the reservation's answer, then the order goes `on_hold` instead of capturing).
Once CapturePayment is sent a hold can no longer stop it, so later holds are refused. An order on
hold waits for a human, with no deadline: a release captures the payment, a cancel releases the stock.

    placed --StockReserved [held, or total above the threshold]--> on_hold --release--> awaiting_payment
                                                                       |
                                                                       | cancel: ReleaseStock
                                                                       v
                                                                   cancelling --StockReleased--> cancelled

Backorders: an order that allows one waits for short stock instead of being rejected. Inventory answers
StockBackordered and the order goes `backordered`, with no deadline running (the wait has no known end);
when stock arrives inventory reserves it and StockReserved continues the saga as from `placed`. A cancel
releases (drops) the backorder.

    placed --StockBackordered--> backordered --StockReserved--> awaiting_payment (or on_hold)

A reservation that inventory expired before the order was paid (ReservationExpired) cancels the order
through the cancel path: a capture in flight is refunded, a held order's stock release is confirmed.
After payment the expiry should not happen; if it does, the order is parked for an operator.

Partial refunds (units that will not ship, a return) are sent while the order goes on. One that payment
refuses, or that goes unanswered after every re-send, parks only that refund (`OrderRefundFailed`): the
order keeps its status, its warehouses' Shipped still count, and an operator retries, skips or resolves
the refund (`OrderRefundActionTaken`). A cancel's full refund failing still parks the whole order.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from oms_events.messages import (
    AuthoriseReturn,
    CancelShipment,
    CapturePayment,
    CarrierUpdate,
    Command,
    Event,
    FulfilmentCancelled,
    FulfilmentFailed,
    ItemsRestocked,
    Message,
    OrderBackordered,
    OrderCancellationRefused,
    OrderCancellationRequested,
    OrderCancelled,
    OrderConfirmed,
    OrderFulfilmentCancelled,
    OrderFulfilmentFailed,
    OrderHoldReleased,
    OrderNeedsAttention,
    OrderOperatorActionTaken,
    OrderPaymentCaptured,
    OrderPaymentDeclined,
    OrderPaymentRefunded,
    OrderPlaced,
    OrderPutOnHold,
    OrderRefundActionTaken,
    OrderRefundFailed,
    OrderRejected,
    OrderReservationExpired,
    OrderReturnCompleted,
    OrderReturnInspected,
    OrderReturnRefunded,
    OrderReturnRequested,
    OrderReturnRestocked,
    OrderReturnUpdated,
    OrderShipmentUpdated,
    OrderShipped,
    OrderShortShipped,
    OrderShortShipRefunded,
    OrderStepTimedOut,
    OrderStockReleased,
    OrderStockReserved,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentReviewRequired,
    RefundPayment,
    ReleaseStock,
    ReservationExpired,
    ReserveStock,
    RestockItems,
    ReturnAuthorised,
    ReturnInspected,
    ReturnReceived,
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDeliveryFailed,
    ShipmentPacked,
    ShipmentPicked,
    ShipmentPickingStarted,
    ShipmentReturnedToSender,
    ShipOrder,
    Shipped,
    StockBackordered,
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
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    NEEDS_ATTENTION = "needs_attention"
    ON_HOLD = "on_hold"
    BACKORDERED = "backordered"

    @property
    def terminal(self) -> bool:
        return self in (OrderStatus.SHIPPED, OrderStatus.REJECTED, OrderStatus.CANCELLED)


class Step(StrEnum):
    """The saga's steps, named after the command each one sends."""

    RESERVE_STOCK = "ReserveStock"
    CAPTURE_PAYMENT = "CapturePayment"
    SHIP_ORDER = "ShipOrder"
    CANCEL_SHIPMENT = "CancelShipment"
    AUTHORISE_RETURN = "AuthoriseReturn"
    RESTOCK_ITEMS = "RestockItems"
    RELEASE_STOCK = "ReleaseStock"
    REFUND_PAYMENT = "RefundPayment"

    @property
    def compensation(self) -> bool:
        return self in (Step.RELEASE_STOCK, Step.REFUND_PAYMENT)


class OrderStateError(Exception):
    """A decision was asked of an order that cannot take it."""


class ActionNotAllowedError(Exception):
    """A cancel or operator action that the order's current state does not allow; says why."""


@dataclass(frozen=True)
class Decision:
    events: tuple[Event, ...] = ()
    commands: tuple[Command, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.events and not self.commands


NOTHING = Decision()

RISK_RULE = "risk-rule"
"""`held_by` of the holds the amount threshold puts on orders."""

PAYMENT_RISK = "payment-risk"
"""`held_by` of the holds payment-service's risk check asks for (PaymentReviewRequired)."""

RESERVATION_EXPIRY = "reservation-expiry"
"""`requested_by` of the cancels an expired stock reservation starts."""

_WAITING_FOR_STOCK = (OrderStatus.PLACED, OrderStatus.BACKORDERED)


@dataclass(frozen=True)
class ShipmentInfo:
    shipment_id: UUID
    warehouse_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date


@dataclass
class ShipmentProgress:
    """Where one shipment of the order is, as fulfilment and its carrier reported it (for tracking)."""

    shipment_id: UUID
    warehouse_id: str
    status: str
    location: str | None = None
    reported_at: datetime | None = None


# Shipments in these states will never ship: their warehouse no longer counts as one to ship from.
_GAVE_UP = ("failed", "cancelled")

_PROGRESS_STATUS: dict[type[Message], str] = {
    ShipmentCreated: "created",
    ShipmentPickingStarted: "picking",
    ShipmentPicked: "picked",
    ShipmentPacked: "packed",
    ShipmentCancelled: "cancelled",
}


def _carrier_status(update: CarrierUpdate) -> str:
    """`ShipmentOutForDelivery` -> `out_for_delivery`."""
    name = type(update).__name__.removeprefix("Shipment")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@dataclass
class ReturnInfo:
    """A return of delivered units: requested -> authorised -> received -> inspected -> completed (refunded
    and, when some units can be sold again, restocked)."""

    return_id: UUID
    status: str
    lines: list[Allocation]
    requested_by: str
    refund_minor: int = 0
    refunded: bool = False
    restock: list[Allocation] = field(default_factory=list)
    restocked: bool = False


@dataclass
class PartialRefund:
    """A refund of part of the payment while the order goes on: units that will not ship, or a return.

    requested -> refunded, or -> failed (refused by payment, or no answer), which parks only this refund
    for an operator: retry (requested again), skip (given up) or resolve (settled outside the system)."""

    refund: str
    amount_minor: int
    currency: str
    reason: str  # the RefundPayment's reason: payment-service derives its idempotency key from it
    shipment_id: UUID | None = None
    return_id: UUID | None = None
    status: str = "requested"
    failure_code: str | None = None
    failure: str | None = None
    attempt: int = 1  # how many distinct requests were made (a retry after a refusal is a new request)
    lines: list[Allocation] = field(default_factory=list)  # what is refunded (units not shipped, or returned)

    @property
    def settled(self) -> bool:
        return self.status in ("refunded", "skipped", "resolved")

    def next_attempt(self) -> int:
        """A refused request is refused again under its idempotency key, so a retry is a new request (its
        reason, hence its key, names the attempt). A request that went unanswered may have been carried out:
        it is re-sent as it was, so that it can never refund twice."""
        return self.attempt if self.failure_code == NO_ANSWER else self.attempt + 1

    def request_reason(self, attempt: int) -> str:
        return self.reason if attempt == 1 else f"{self.reason} (attempt {attempt})"


NO_ANSWER = "no_answer"


def short_ship_refund(shipment_id: UUID) -> str:
    return f"short-ship:{shipment_id}"


def return_refund(return_id: UUID) -> str:
    return f"return:{return_id}"


class ReturnNotAllowedError(ActionNotAllowedError):
    """A return of lines that were not delivered, or of more units than are left to return."""


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
    compensating: str | None = None  # "cancel" or "reject" while undoing
    payment_amount: int = 0
    refunded: bool = False
    stock_released: bool = False
    cancel_reason: str | None = None
    cancel_requested_by: str | None = None
    attention_step: Step | None = None
    attention_reason: str | None = None
    status_before_attention: OrderStatus | None = None
    hold_pending: bool = False  # held while `placed`: goes on hold when the stock is reserved
    hold_reason: str | None = None
    held_by: str | None = None
    fulfilment: dict[UUID, ShipmentProgress] = field(default_factory=dict)
    fulfilment_cancel_pending: bool = False  # CancelShipment sent, its answer not in yet
    cancel_code: str | None = None
    shipped_lines: dict[UUID, list[Allocation]] = field(default_factory=dict)
    refunded_minor: int = 0  # refunded in part so far (short shipments, returns)
    short_refunds: dict[UUID, int] = field(default_factory=dict)  # shipment -> refund still to come
    returns: dict[UUID, ReturnInfo] = field(default_factory=dict)
    partial_refunds: dict[str, PartialRefund] = field(default_factory=dict)
    placed_at: datetime | None = None
    """When the order was placed (its OrderPlaced's envelope time): set by a loader that has the envelopes,
    for ShipOrder (fulfilment's placed-to-shipped times)."""

    @property
    def held(self) -> bool:
        """On hold, or to be put on hold when the reservation answers."""
        return self.status is OrderStatus.ON_HOLD or (self.status in _WAITING_FOR_STOCK and self.hold_pending)

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
                self.status = OrderStatus.ON_HOLD if self.hold_pending else OrderStatus.AWAITING_PAYMENT
                self.hold_pending = False
            case OrderBackordered():
                self.status = OrderStatus.BACKORDERED
            case OrderReservationExpired():
                pass  # what follows (a cancel, or an operator's attention) says what it means for the order
            case OrderPutOnHold():
                self.hold_reason = event.reason
                self.held_by = event.held_by
                if self.status in _WAITING_FOR_STOCK:
                    self.hold_pending = True
                else:
                    self.status = OrderStatus.ON_HOLD
            case OrderHoldReleased():
                self.hold_pending = False
                self.hold_reason = None
                self.held_by = None
                if self.status is OrderStatus.ON_HOLD:
                    self.status = OrderStatus.AWAITING_PAYMENT
            case OrderConfirmed():
                self.payment_id = event.payment_id
                self.payment_amount = event.amount_minor
                self.status = OrderStatus.CONFIRMED
            case OrderPaymentDeclined():
                if self.compensating == "cancel":
                    return self._bump()
                self.rejection_reason = event.reason
                self.compensating = "reject"
                self.status = OrderStatus.RELEASING_STOCK
            case OrderStockReleased():
                self.stock_released = True
            case OrderCancellationRequested():
                if self.status is OrderStatus.CONFIRMED:
                    self.fulfilment_cancel_pending = True
                self.compensating = "cancel"
                self.cancel_reason = event.reason
                self.cancel_requested_by = event.requested_by
                self.status = OrderStatus.CANCELLING
            case OrderPaymentCaptured():
                self.payment_id = event.payment_id
                self.payment_amount = event.amount_minor
            case OrderPaymentRefunded():
                self.refunded = True
            case OrderCancelled():
                self.cancel_reason = event.note
                self.status = OrderStatus.CANCELLED
            case OrderStepTimedOut():
                if event.step == Step.RESERVE_STOCK:
                    self.compensating = self.compensating or "reject"
                    self.rejection_reason = "no answer from inventory"
                    if self.status is not OrderStatus.CANCELLING:
                        self.status = OrderStatus.RELEASING_STOCK
            case OrderNeedsAttention():
                self.status_before_attention = self.status
                self.attention_step = Step(event.step)
                self.attention_reason = event.reason
                self.status = OrderStatus.NEEDS_ATTENTION
            case OrderOperatorActionTaken():
                self.status = self.status_before_attention
                self.attention_step = None
                self.attention_reason = None
            case OrderShipmentUpdated():
                self.fulfilment[event.shipment_id] = ShipmentProgress(
                    event.shipment_id,
                    event.warehouse_id,
                    event.status,
                    event.location or self._location_of(event.shipment_id),
                    event.reported_at,
                )
                if self.status is OrderStatus.PARTIALLY_SHIPPED and not self.warehouses_to_ship:
                    self.status = OrderStatus.SHIPPED
            case OrderFulfilmentFailed():
                if event.shipment_id is not None and event.warehouse_id is not None:
                    self.fulfilment[event.shipment_id] = ShipmentProgress(
                        event.shipment_id, event.warehouse_id, "failed"
                    )
                self.fulfilment_cancel_pending = bool(self._live_shipments())
                self.compensating = "cancel"
                self.cancel_code = "fulfilment_failed"
                self.cancel_reason = event.reason
                self.cancel_requested_by = "fulfilment-service"
                self.status = OrderStatus.CANCELLING
            case OrderFulfilmentCancelled():
                self.fulfilment_cancel_pending = False
            case OrderCancellationRefused():
                self.fulfilment_cancel_pending = False
                self.compensating = None
                self.cancel_code = None
                self.status = self._shipping_status()
            case OrderReturnRequested():
                self.returns[event.return_id] = ReturnInfo(
                    event.return_id, "requested", list(event.lines), event.requested_by
                )
            case OrderReturnUpdated():
                self.returns[event.return_id].status = event.status
            case OrderReturnInspected():
                inspected = self.returns[event.return_id]
                inspected.status = "inspected"
                inspected.refund_minor = event.refund_minor
                inspected.refunded = event.refund_minor == 0
                inspected.restock = list(event.sellable)
                inspected.restocked = not event.sellable
                if event.refund_minor > 0 and self.payment_id is not None:
                    key = return_refund(event.return_id)
                    self.partial_refunds[key] = PartialRefund(
                        key,
                        event.refund_minor,
                        event.currency,
                        _return_reason(event.return_id),
                        return_id=event.return_id,
                        lines=list(inspected.lines),
                    )
            case OrderReturnRefunded():
                self.returns[event.return_id].refunded = True
                self.refunded_minor += event.amount_minor
                self._refund_settled(return_refund(event.return_id), "refunded")
            case OrderShortShipped():
                self.short_refunds[event.shipment_id] = event.refund_minor
                if event.refund_minor > 0 and self.payment_id is not None:
                    key = short_ship_refund(event.shipment_id)
                    self.partial_refunds[key] = PartialRefund(
                        key,
                        event.refund_minor,
                        event.currency,
                        _short_ship_reason(event.warehouse_id, event.shipment_id),
                        shipment_id=event.shipment_id,
                        lines=list(event.short),
                    )
            case OrderShortShipRefunded():
                self.short_refunds.pop(event.shipment_id, None)
                self.refunded_minor += event.amount_minor
                self._refund_settled(short_ship_refund(event.shipment_id), "refunded")
            case OrderRefundFailed():
                failed = self.partial_refunds.get(event.refund)
                if failed is not None:
                    failed.status = "failed"
                    failed.failure_code = event.reason_code
                    failed.failure = event.reason
            case OrderRefundActionTaken():
                acted = self.partial_refunds.get(event.refund)
                if acted is not None:
                    if event.action == "retry":
                        acted.attempt = acted.next_attempt()
                        acted.status = "requested"
                    else:
                        acted.status = "skipped" if event.action == "skip" else "resolved"
                        if acted.shipment_id is not None:
                            self.short_refunds.pop(acted.shipment_id, None)
            case OrderReturnRestocked():
                self.returns[event.return_id].restocked = True
            case OrderReturnCompleted():
                self.returns[event.return_id].status = "completed"
            case OrderShipped():
                self.shipped_lines[event.shipment_id] = list(event.lines) or [
                    a for a in self.allocations if a.warehouse_id == event.warehouse_id
                ]
                self.fulfilment[event.shipment_id] = ShipmentProgress(event.shipment_id, event.warehouse_id, "shipped")
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
                if self.status is not OrderStatus.CANCELLING:
                    self.status = self._shipping_status()
            case OrderRejected():
                self.rejection_reason = event.reason
                self.status = OrderStatus.REJECTED
            case _:
                raise OrderStateError(f"{type(event).__name__} is not an order event")
        self._bump()

    def _bump(self) -> None:
        self.version += 1

    def _refund_settled(self, key: str, status: str) -> None:
        known = self.partial_refunds.get(key)
        if known is not None:
            known.status = status
            known.failure_code = known.failure = None

    @property
    def refunds_needing_attention(self) -> list[PartialRefund]:
        return [r for r in self.partial_refunds.values() if r.status == "failed"]

    def _requested_refund(self, amount_minor: int | None) -> PartialRefund | None:
        """The partial refund in flight that a payment answer is about: the one of that amount (oldest
        first), or, for an answer that does not say its amount (older payment-service), the only one."""
        requested = [r for r in self.partial_refunds.values() if r.status == "requested"]
        if amount_minor is None:
            return requested[0] if len(requested) == 1 else None
        return next((r for r in requested if r.amount_minor == amount_minor), None)

    def _return_refund_settled(self, known: ReturnInfo) -> bool:
        partial = self.partial_refunds.get(return_refund(known.return_id))
        return known.refunded or (partial is not None and partial.settled)

    @property
    def warehouses_to_ship(self) -> set[str]:
        given_up = {p.warehouse_id for p in self.fulfilment.values() if p.status in _GAVE_UP}
        return {a.warehouse_id for a in self.allocations} - {s.warehouse_id for s in self.shipments} - given_up

    def _shipping_status(self) -> OrderStatus:
        if not self.shipments:
            return OrderStatus.CONFIRMED
        return OrderStatus.SHIPPED if not self.warehouses_to_ship else OrderStatus.PARTIALLY_SHIPPED

    def _location_of(self, shipment_id: UUID) -> str | None:
        known = self.fulfilment.get(shipment_id)
        return known.location if known else None

    def _live_shipments(self) -> list[ShipmentProgress]:
        """Shipments that have neither shipped nor been given up: the ones a cancel can still stop."""
        return [p for p in self.fulfilment.values() if p.status in ("created", "picking", "picked", "packed")]

    @property
    def fulfilment_accepted(self) -> bool:
        """Fulfilment took every warehouse's part of the order: shipping now waits for people (manual
        warehouses), so the saga stops counting down."""
        if self.status not in (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED):
            return False
        known = {p.warehouse_id for p in self.fulfilment.values()}
        return bool(self.allocations) and {a.warehouse_id for a in self.allocations} <= known

    def _require(self) -> OrderPlaced:
        if self.placed is None:
            raise OrderStateError(f"order {self.order_id} does not exist")
        return self.placed

    # ------------------------------------------------------------------ decisions

    @staticmethod
    def place(placed: OrderPlaced) -> Decision:
        """A new order: record it and ask inventory for its stock (the address picks the warehouse)."""
        return Decision(
            events=(placed,),
            commands=(
                ReserveStock(
                    order_id=placed.order_id,
                    lines=[StockLine(sku=line.sku, quantity=line.quantity) for line in placed.lines],
                    allow_backorder=placed.allow_backorder,
                    shipping_address=placed.shipping_address,
                ),
            ),
        )

    def on_stock_reserved(self, reply: StockReserved, payment_token: str, hold_above_minor: int = 0) -> Decision:
        """Capture the payment, unless the order is held or its total is above `hold_above_minor`
        (the risk rule; 0 disables it): then it goes on hold and nothing is sent."""
        placed = self._require()
        if self.status not in _WAITING_FOR_STOCK:
            return NOTHING
        reserved = OrderStockReserved(
            order_id=self.order_id, reservation_id=reply.reservation_id, allocations=reply.allocations
        )
        if self.hold_pending:
            return Decision(events=(reserved,))
        if 0 < hold_above_minor < placed.total_minor:
            return Decision(
                events=(
                    reserved,
                    OrderPutOnHold(
                        order_id=self.order_id,
                        reason=f"order total {placed.total_minor} {placed.currency} (minor units) is above the "
                        f"risk threshold {hold_above_minor}",
                        held_by=RISK_RULE,
                    ),
                )
            )
        return Decision(events=(reserved,), commands=(self._capture(payment_token),))

    def _capture(self, payment_token: str, reviewed: bool = False) -> CapturePayment:
        placed = self._require()
        return CapturePayment(
            reviewed=reviewed,
            order_id=self.order_id,
            customer_id=placed.customer.customer_id,
            amount_minor=placed.total_minor,
            currency=placed.currency,
            payment_token=payment_token,
            channel=placed.channel.value,
            billing_country=placed.billing_address.country if placed.billing_address else None,
            shipping_country=placed.shipping_address.country,
        )

    def on_payment_review_required(self, reply: PaymentReviewRequired) -> Decision:
        """payment-service wants a human to look at the payment first: hold the order until ops release
        it (then the capture is sent again, marked reviewed) or cancel it."""
        self._require()
        if self.status is OrderStatus.CANCELLING and self.payment_id is None and not self.stock_released:
            # Cancelled while the capture was in flight, and nothing was authorised: release the stock.
            return Decision(commands=(ReleaseStock(order_id=self.order_id, reason="order cancelled"),))
        if self.status is not OrderStatus.AWAITING_PAYMENT:
            return NOTHING
        return Decision(events=(OrderPutOnHold(order_id=self.order_id, reason=reply.reason, held_by=PAYMENT_RISK),))

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

    def on_stock_backordered(self, reply: StockBackordered) -> Decision:
        """Short stock, and the order allows a backorder: it waits (no deadline) until stock arrives."""
        self._require()
        if self.status is not OrderStatus.PLACED:
            return NOTHING
        return Decision(events=(OrderBackordered(order_id=self.order_id, shortages=reply.shortages),))

    def on_reservation_expired(self, reply: ReservationExpired) -> Decision:
        """Inventory released the order's stock because it was not paid for in time: the order is cancelled
        through the cancel path (a capture in flight is refunded when it answers)."""
        self._require()
        expired = OrderReservationExpired(order_id=self.order_id, reservation_id=reply.reservation_id)
        if self.reservation_id is not None and reply.reservation_id != self.reservation_id:
            return NOTHING
        cancel = OrderCancellationRequested(
            order_id=self.order_id,
            reason="the stock reservation expired before the order was paid",
            requested_by=RESERVATION_EXPIRY,
        )
        if self.status is OrderStatus.AWAITING_PAYMENT:
            return Decision(events=(expired, cancel))
        if self.status is OrderStatus.ON_HOLD:
            # The stock is released already; the release confirms it and closes the saga's step.
            return Decision(
                events=(expired, cancel),
                commands=(ReleaseStock(order_id=self.order_id, reason="reservation expired"),),
            )
        if self.status in (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED):
            return self._park(
                Step.SHIP_ORDER, "the stock reservation expired after the payment; check the warehouse", expired
            )
        return NOTHING

    def on_payment_captured(self, reply: PaymentCaptured) -> Decision:
        placed = self._require()
        if self.status is OrderStatus.CANCELLING and self.payment_id is None:
            # The capture was in flight when the customer cancelled: refund it, then release.
            return Decision(
                events=(
                    OrderPaymentCaptured(
                        order_id=self.order_id,
                        payment_id=reply.payment_id,
                        amount_minor=reply.amount_minor,
                        currency=reply.currency,
                    ),
                ),
                commands=(
                    RefundPayment(
                        order_id=self.order_id,
                        payment_id=reply.payment_id,
                        amount_minor=reply.amount_minor,
                        currency=reply.currency,
                        reason=f"order cancelled: {self.cancel_reason}",
                    ),
                ),
            )
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
                    placed_at=self.placed_at,
                ),
            ),
        )

    def on_payment_declined(self, reply: PaymentDeclined) -> Decision:
        self._require()
        if self.status is OrderStatus.CANCELLING and self.payment_id is None:
            return Decision(
                events=(
                    OrderPaymentDeclined(order_id=self.order_id, reason_code=reply.reason_code, reason=reply.reason),
                ),
                commands=(ReleaseStock(order_id=self.order_id, reason="order cancelled"),),
            )
        if self.status is not OrderStatus.AWAITING_PAYMENT:
            return NOTHING
        return Decision(
            events=(OrderPaymentDeclined(order_id=self.order_id, reason_code=reply.reason_code, reason=reply.reason),),
            commands=(ReleaseStock(order_id=self.order_id, reason=f"payment declined: {reply.reason_code}"),),
        )

    def on_stock_released(self, reply: StockReleased) -> Decision:
        self._require()
        released = OrderStockReleased(order_id=self.order_id, reservation_id=reply.reservation_id)
        if self.status is OrderStatus.CANCELLING and not self.stock_released:
            return Decision(events=(released, self._cancelled()))
        if self.status is not OrderStatus.RELEASING_STOCK:
            return NOTHING
        return Decision(events=(released, self._rejected()))

    def _cancelled(self, note: str | None = None, by: str | None = None) -> OrderCancelled:
        """The customer is told in fixed words; the canceller's own text stays an internal note."""
        refunded = " Your payment has been refunded." if self.refunded else ""
        if by is not None:
            code, message = "resolved_by_operator", "Our customer service team has cancelled your order."
        elif self.cancel_requested_by == RESERVATION_EXPIRY:
            code, message = "reservation_expired", "We could not complete your order in time, so it has been cancelled."
        elif self.cancel_code == "fulfilment_failed":
            code, message = "fulfilment_failed", "We could not ship your order, so it has been cancelled."
        else:
            code, message = "requested", "Your order has been cancelled as requested."
        return OrderCancelled(
            order_id=self.order_id,
            reason_code=code,
            customer_message=message + refunded,
            note=note or self.cancel_reason or "cancelled",
            requested_by=by or self.cancel_requested_by or "unknown",
        )

    def _rejected(self) -> OrderRejected:
        if self.rejection_reason == "no answer from inventory":
            return OrderRejected(
                order_id=self.order_id,
                reason_code="no_reply",
                reason="We could not confirm stock for your order in time, so it was not completed.",
            )
        return OrderRejected(
            order_id=self.order_id,
            reason_code="payment_declined",
            reason="Your payment was declined, so we could not complete your order.",
        )

    # ------------------------------------------------------------------ cancel

    def request_cancel(self, reason: str, requested_by: str) -> Decision:
        self._require()
        requested = OrderCancellationRequested(order_id=self.order_id, reason=reason, requested_by=requested_by)
        if self.status in _WAITING_FOR_STOCK:
            # The reservation may be in flight: inventory handles the release after it, or
            # remembers the release so that a late reservation reserves nothing.
            return Decision(
                events=(requested,), commands=(ReleaseStock(order_id=self.order_id, reason="order cancelled"),)
            )
        if self.status is OrderStatus.AWAITING_PAYMENT:
            # The capture is in flight: its answer decides between refund-then-release and release.
            return Decision(events=(requested,))
        if self.status is OrderStatus.ON_HOLD:
            # The payment was never attempted: release the stock.
            return Decision(
                events=(requested,), commands=(ReleaseStock(order_id=self.order_id, reason="order cancelled"),)
            )
        if self.status is OrderStatus.CONFIRMED:
            # Fulfilment has started: it cancels the shipments that have not left, or refuses when one has.
            return Decision(
                events=(requested,),
                commands=(CancelShipment(order_id=self.order_id, reason=reason, requested_by=requested_by),),
            )
        raise ActionNotAllowedError(
            {
                OrderStatus.PARTIALLY_SHIPPED: "the order has shipped in part",
                OrderStatus.SHIPPED: "the order has shipped",
                OrderStatus.CANCELLING: "the order is being cancelled already",
                OrderStatus.CANCELLED: "the order is cancelled already",
                OrderStatus.REJECTED: "the order was rejected",
                OrderStatus.RELEASING_STOCK: "the order is being rejected",
                OrderStatus.NEEDS_ATTENTION: "the order waits for an operator",
            }.get(self.status or OrderStatus.PLACED, f"status {self.status}")
        )

    def on_payment_refunded(self, reply: PaymentRefunded) -> Decision:
        self._require()
        if self.status is not OrderStatus.CANCELLING:
            return self._return_refunded(reply)
        if self.refunded:
            return NOTHING
        return Decision(
            events=(
                OrderPaymentRefunded(
                    order_id=self.order_id,
                    refund_id=reply.refund_id,
                    amount_minor=reply.amount_minor,
                    currency=reply.currency,
                ),
            ),
            commands=(ReleaseStock(order_id=self.order_id, reason="order cancelled"),),
        )

    def on_payment_refund_failed(self, reply: PaymentRefundFailed) -> Decision:
        """The cancel's refund failing parks the order (nothing else can happen before it is settled). A
        partial refund failing parks only that refund: the order goes on (its warehouses still ship)."""
        self._require()
        undoing = self.status is OrderStatus.CANCELLING and not self.refunded
        if undoing and (reply.amount_minor is None or reply.amount_minor == self._full_refund_minor()):
            return self._park(Step.REFUND_PAYMENT, f"refund failed: {reply.reason_code}: {reply.reason}")
        partial = self._requested_refund(reply.amount_minor)
        if partial is None:
            return NOTHING
        return Decision(events=(self._refund_failed(partial, reply.reason_code, reply.reason),))

    def _refund_failed(self, partial: PartialRefund, reason_code: str, reason: str) -> OrderRefundFailed:
        return OrderRefundFailed(
            order_id=self.order_id,
            refund=partial.refund,
            shipment_id=partial.shipment_id,
            return_id=partial.return_id,
            amount_minor=partial.amount_minor,
            currency=partial.currency,
            reason_code=reason_code,
            reason=reason,
        )

    def _full_refund_minor(self) -> int:
        return self.payment_amount - self.refunded_minor

    # ------------------------------------------------------------------ holds

    def put_on_hold(self, reason: str, held_by: str) -> Decision:
        """An operator holds the order. Only while `placed`: once CapturePayment is sent, a hold
        cannot stop it."""
        self._require()
        if self.status in _WAITING_FOR_STOCK and not self.hold_pending:
            return Decision(events=(OrderPutOnHold(order_id=self.order_id, reason=reason, held_by=held_by),))
        if self.held:
            raise ActionNotAllowedError(f"the order is on hold already (held by {self.held_by}: {self.hold_reason})")
        raise ActionNotAllowedError(
            {
                OrderStatus.AWAITING_PAYMENT: "its payment capture has been sent; a hold can no longer stop it",
                OrderStatus.CONFIRMED: "the order is paid and being fulfilled",
                OrderStatus.PARTIALLY_SHIPPED: "the order has shipped in part",
                OrderStatus.SHIPPED: "the order has shipped",
                OrderStatus.CANCELLING: "the order is being cancelled",
                OrderStatus.CANCELLED: "the order is cancelled",
                OrderStatus.REJECTED: "the order was rejected",
                OrderStatus.RELEASING_STOCK: "the order is being rejected",
                OrderStatus.NEEDS_ATTENTION: "the order waits for an operator action",
            }.get(self.status or OrderStatus.PLACED, f"status {self.status}")
        )

    def release_hold(self, released_by: str, note: str, payment_token: str | None) -> Decision:
        """On hold: capture the payment (the saga goes on). Held while `placed`: clear the pending
        hold, so that the reservation's answer captures as usual."""
        self._require()
        released = OrderHoldReleased(order_id=self.order_id, released_by=released_by, note=note)
        if self.status in _WAITING_FOR_STOCK and self.hold_pending:
            return Decision(events=(released,))
        if self.status is not OrderStatus.ON_HOLD:
            raise ActionNotAllowedError("the order is not on hold")
        if payment_token is None:
            raise ActionNotAllowedError("the order's payment token is no longer kept; cancel the order instead")
        # Releasing payment-service's review hold is the review: its risk check is not run again.
        reviewed = self.held_by == PAYMENT_RISK
        return Decision(events=(released,), commands=(self._capture(payment_token, reviewed),))

    # ------------------------------------------------------------------ deadlines and operators

    def _park(self, step: Step, reason: str, *before: Event) -> Decision:
        return Decision(events=(*before, OrderNeedsAttention(order_id=self.order_id, step=step.value, reason=reason)))

    def on_step_timed_out(self, step: Step, attempts: int, command: Command | None = None) -> Decision:
        """Every re-send of `step` (its last `command`) went unanswered. A partial refund without an answer
        parks only that refund, whatever the order's status (a return's refund comes after `shipped`)."""
        self._require()
        if isinstance(command, RefundPayment) and not (self.status is OrderStatus.CANCELLING and not self.refunded):
            partial = self._requested_refund(command.amount_minor)
            if partial is not None:
                timed_out = OrderStepTimedOut(order_id=self.order_id, step=step.value, attempts=attempts)
                why = f"no answer from payment to RefundPayment after {attempts} attempts"
                return Decision(events=(timed_out, self._refund_failed(partial, NO_ANSWER, why)))
        if (
            self.status is None
            or self.status.terminal
            or self.status in (OrderStatus.NEEDS_ATTENTION, OrderStatus.ON_HOLD, OrderStatus.BACKORDERED)
        ):
            return NOTHING
        timed_out = OrderStepTimedOut(order_id=self.order_id, step=step.value, attempts=attempts)
        if step is Step.RESERVE_STOCK and self.status is OrderStatus.PLACED:
            # Whether or not inventory reserved, releasing is safe: then the order is rejected.
            return Decision(
                events=(timed_out,),
                commands=(ReleaseStock(order_id=self.order_id, reason="no answer to the reservation"),),
            )
        service = {
            Step.RESERVE_STOCK: "inventory",
            Step.RELEASE_STOCK: "inventory",
            Step.CAPTURE_PAYMENT: "payment",
            Step.REFUND_PAYMENT: "payment",
            Step.SHIP_ORDER: "fulfilment",
            Step.CANCEL_SHIPMENT: "fulfilment",
            Step.AUTHORISE_RETURN: "fulfilment",
            Step.RESTOCK_ITEMS: "inventory",
        }[step]
        outcome = " (the payment may or may not have been captured)" if step is Step.CAPTURE_PAYMENT else ""
        return self._park(
            step, f"no answer from {service} to {step.value} after {attempts} attempts{outcome}", timed_out
        )

    def operator_action(
        self, action: str, operator: str, note: str, parked_command: Command | None, refund: str | None = None
    ) -> Decision:
        """retry: send the parked step's command again; skip: treat a compensation as done and go on;
        resolve: the operator settled the order outside the system, which closes it.

        For a failed partial refund (named by `refund`, or the only one when the order itself does not wait
        for an operator): retry sends it again, skip gives it up, resolve records that it was settled outside
        the system; the order's status does not change."""
        self._require()
        waiting = self.status is OrderStatus.NEEDS_ATTENTION and self.attention_step is not None
        if refund is not None or (not waiting and self.refunds_needing_attention):
            return self._refund_action(action, operator, note, refund)
        if self.status is not OrderStatus.NEEDS_ATTENTION or self.attention_step is None:
            raise ActionNotAllowedError("the order is not waiting for an operator")
        step = self.attention_step
        if action not in ("retry", "skip", "resolve"):
            raise ActionNotAllowedError(f"unknown action {action!r}; use retry, skip or resolve")
        taken = OrderOperatorActionTaken(order_id=self.order_id, action=action, operator=operator, note=note)
        if action == "retry":
            if parked_command is None:
                raise ActionNotAllowedError("there is no command to re-send for this step")
            return Decision(events=(taken,), commands=(parked_command,))
        if action == "skip":
            if not step.compensation:
                raise ActionNotAllowedError(f"{step.value} is not a compensation; retry or resolve it")
            if step is Step.REFUND_PAYMENT:
                return Decision(
                    events=(taken,), commands=(ReleaseStock(order_id=self.order_id, reason="order cancelled"),)
                )
            final: Event = self._cancelled() if self.compensating == "cancel" else self._rejected()
            return Decision(events=(taken, final))
        if action == "resolve":
            if self.compensating == "cancel":
                return Decision(events=(taken, self._cancelled(f"resolved by an operator: {note}", operator)))
            return Decision(
                events=(
                    taken,
                    OrderRejected(order_id=self.order_id, reason_code="resolved_by_operator", reason=note),
                )
            )
        raise AssertionError("unreachable")

    def _refund_action(self, action: str, operator: str, note: str, refund: str | None) -> Decision:
        if action not in ("retry", "skip", "resolve"):
            raise ActionNotAllowedError(f"unknown action {action!r}; use retry, skip or resolve")
        failed = self.refunds_needing_attention
        if refund is None:
            if len(failed) != 1:
                names = ", ".join(r.refund for r in failed)
                raise ActionNotAllowedError(f"several refunds wait for an operator; name one in `refund`: {names}")
            target = failed[0]
        else:
            known = self.partial_refunds.get(refund)
            if known is None or known.status != "failed":
                names = ", ".join(r.refund for r in failed) or "none"
                raise ActionNotAllowedError(f"refund {refund} does not wait for an operator (failed refunds: {names})")
            target = known
        taken = OrderRefundActionTaken(
            order_id=self.order_id,
            refund=target.refund,
            action=action,
            operator=operator,
            note=note,
        )
        if action == "retry":
            assert self.payment_id is not None  # a partial refund is only requested of a captured payment
            command = RefundPayment(
                order_id=self.order_id,
                payment_id=self.payment_id,
                amount_minor=target.amount_minor,
                currency=target.currency,
                reason=target.request_reason(target.next_attempt()),
            )
            return Decision(events=(taken,), commands=(command,))
        events: list[Event] = [taken]
        returned = self.returns.get(target.return_id) if target.return_id is not None else None
        if returned is not None and returned.status == "inspected" and returned.restocked:
            events.append(OrderReturnCompleted(order_id=self.order_id, return_id=returned.return_id))
        return Decision(events=tuple(events))

    def on_shipped(self, reply: Shipped) -> Decision:
        self._require()
        # A shipment that left while a cancel was on its way to fulfilment is recorded: the cancel will be refused.
        cancelling_fulfilment = self.status is OrderStatus.CANCELLING and self.fulfilment_cancel_pending
        if self.status not in (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED) and not cancelling_fulfilment:
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
                    lines=reply.lines,
                ),
            )
        )

    # ------------------------------------------------------------------ fulfilment

    def on_shipment_progress(self, reply: Message) -> Decision:
        """A shipment moved (created, picking, picked, packed, a carrier's report, cancelled): recorded for the
        order's tracking view. A report that changes nothing (a repeated answer, or a carrier update that
        came out of order and did not move the shipment) is not recorded."""
        self._require()
        if self.status not in (
            OrderStatus.CONFIRMED,
            OrderStatus.PARTIALLY_SHIPPED,
            OrderStatus.SHIPPED,
            OrderStatus.CANCELLING,
        ):
            return NOTHING
        update = self._progress(reply)
        if update is None:
            return NOTHING
        known = self.fulfilment.get(update.shipment_id)
        if known is not None and known.status == update.status and known.reported_at == update.reported_at:
            return NOTHING
        if (
            isinstance(reply, ShipmentPicked)
            and reply.short
            and reply.picked
            and self.status is not OrderStatus.CANCELLING
        ):
            return self._short_shipped(reply.shipment_id, reply.warehouse_id, reply.short, update)
        return Decision(events=(update,))

    def _short_shipped(self, shipment_id: UUID, warehouse_id: str, short: list[Allocation], *before: Event) -> Decision:
        """Units that will not ship: their value is refunded (the rest of the order goes on)."""
        placed = self._require()
        prices: dict[str, int] = {}
        for line in placed.lines:
            prices.setdefault(line.sku, line.unit_price_minor)
        value = sum(prices.get(line.sku, 0) * line.quantity for line in short)
        recorded = OrderShortShipped(
            order_id=self.order_id,
            shipment_id=shipment_id,
            warehouse_id=warehouse_id,
            short=short,
            refund_minor=value,
            currency=placed.currency,
        )
        if value == 0 or self.payment_id is None:
            return Decision(events=(*before, recorded))
        refund = RefundPayment(
            order_id=self.order_id,
            payment_id=self.payment_id,
            amount_minor=value,
            currency=placed.currency,
            reason=_short_ship_reason(warehouse_id, shipment_id),
        )
        return Decision(events=(*before, recorded), commands=(refund,))

    def _progress(self, reply: Message) -> OrderShipmentUpdated | None:
        if isinstance(reply, CarrierUpdate):
            if reply.superseded:
                return None
            reason = reply.reason if isinstance(reply, ShipmentDeliveryFailed | ShipmentReturnedToSender) else None
            return OrderShipmentUpdated(
                order_id=self.order_id,
                shipment_id=reply.shipment_id,
                warehouse_id=self._warehouse_of(reply.shipment_id),
                status=_carrier_status(reply),
                location=reply.location,
                carrier=reply.carrier,
                tracking_number=reply.tracking_number,
                reported_at=reply.reported_at,
                note=reason,
            )
        status = _PROGRESS_STATUS.get(type(reply))
        if status is None or not isinstance(
            reply, ShipmentCreated | ShipmentPickingStarted | ShipmentPicked | ShipmentPacked | ShipmentCancelled
        ):
            return None
        # An automatic warehouse walks to Shipped in one commit: its steps in between tell the customer
        # nothing, so the order records only manual shipments' steps (and Shipped, as OrderShipped).
        if isinstance(reply, ShipmentCreated):
            # A re-sent ShipOrder is answered with ShipmentCreated again: it must not move tracking back.
            if reply.mode != "manual" or reply.shipment_id in self.fulfilment:
                return None
        elif reply.shipment_id not in self.fulfilment:
            return None
        note = None
        if isinstance(reply, ShipmentPicked) and reply.short:
            note = "short pick: " + ", ".join(f"{line.quantity} x {line.sku}" for line in reply.short)
        return OrderShipmentUpdated(
            order_id=self.order_id,
            shipment_id=reply.shipment_id,
            warehouse_id=reply.warehouse_id,
            status=status,
            note=note,
        )

    def _warehouse_of(self, shipment_id: UUID) -> str:
        known = self.fulfilment.get(shipment_id)
        return known.warehouse_id if known else "unknown"

    def _refund(self, reason: str) -> RefundPayment:
        placed = self._require()
        assert self.payment_id is not None
        return RefundPayment(
            order_id=self.order_id,
            payment_id=self.payment_id,
            # What was refunded in part before (a short shipment) is not refunded twice.
            amount_minor=self._full_refund_minor(),
            currency=placed.currency,
            reason=reason,
        )

    def on_fulfilment_failed(self, reply: FulfilmentFailed) -> Decision:
        """Nothing of a shipment could be found after the payment was captured. Nothing of the order has
        shipped: cancel the other shipments (if any), refund, release the stock, cancel the order. Part of
        it has shipped: that warehouse is given up and the rest goes on."""
        self._require()
        if self.status is OrderStatus.CONFIRMED and self.payment_id is not None:
            failed = OrderFulfilmentFailed(
                order_id=self.order_id,
                shipment_id=reply.shipment_id,
                warehouse_id=reply.warehouse_id,
                reason_code=reply.reason_code,
                reason=reply.reason,
            )
            others = [p for p in self._live_shipments() if p.shipment_id != reply.shipment_id]
            if others:
                command: Command = CancelShipment(
                    order_id=self.order_id,
                    reason=f"another warehouse could not fulfil the order: {reply.reason}",
                    requested_by="fulfilment-service",
                )
            else:
                command = self._refund(f"fulfilment failed: {reply.reason_code}")
            return Decision(events=(failed,), commands=(command,))
        if self.status is OrderStatus.PARTIALLY_SHIPPED and reply.shipment_id and reply.warehouse_id:
            failed_update = OrderShipmentUpdated(
                order_id=self.order_id,
                shipment_id=reply.shipment_id,
                warehouse_id=reply.warehouse_id,
                status="failed",
                note=f"{reply.reason_code}: {reply.reason}",
            )
            lines = [a for a in self.allocations if a.warehouse_id == reply.warehouse_id]
            if not lines:
                return Decision(events=(failed_update,))
            return self._short_shipped(reply.shipment_id, reply.warehouse_id, lines, failed_update)
        return NOTHING

    def on_fulfilment_cancelled(self, reply: FulfilmentCancelled) -> Decision:
        """Every shipment stopped before leaving: refund (if paid) then release, as for any cancel."""
        self._require()
        if self.status is not OrderStatus.CANCELLING or not self.fulfilment_cancel_pending:
            return NOTHING
        done = OrderFulfilmentCancelled(order_id=self.order_id, shipment_ids=reply.shipment_ids)
        if self.payment_id is not None and not self.refunded:
            reason = "fulfilment failed" if self.cancel_code == "fulfilment_failed" else "order cancelled"
            return Decision(events=(done,), commands=(self._refund(f"{reason}: {self.cancel_reason}"),))
        return Decision(events=(done,), commands=(ReleaseStock(order_id=self.order_id, reason="order cancelled"),))

    def on_cancellation_refused(self, reply: ShipmentCancellationRefused) -> Decision:
        """Part of the order had left its warehouse: the cancel is refused and the order goes on."""
        self._require()
        if self.status is not OrderStatus.CANCELLING or not self.fulfilment_cancel_pending:
            return NOTHING
        return Decision(events=(OrderCancellationRefused(order_id=self.order_id, reason=reply.reason),))

    # ------------------------------------------------------------------ returns

    def returnable(self) -> dict[tuple[str, str], int]:
        """Units that may still be returned, per (sku, warehouse): delivered, minus those asked back before."""
        left: dict[tuple[str, str], int] = {}
        for shipment_id, lines in self.shipped_lines.items():
            progress = self.fulfilment.get(shipment_id)
            if progress is None or progress.status != "delivered":
                continue
            for line in lines:
                key = (line.sku, line.warehouse_id)
                left[key] = left.get(key, 0) + line.quantity
        for earlier in self.returns.values():
            for line in earlier.lines:
                key = (line.sku, line.warehouse_id)
                left[key] = left.get(key, 0) - line.quantity
        return {key: qty for key, qty in left.items() if qty > 0}

    def request_return(self, return_id: UUID, wanted: dict[str, int], reason: str, requested_by: str) -> Decision:
        """Delivered units coming back: `wanted` is units per sku. Each unit is taken from a warehouse it was
        delivered from (where it will be restocked). Raises ReturnNotAllowedError, naming the sku, when more
        is asked than was delivered and not returned yet."""
        self._require()
        if return_id in self.returns:
            return NOTHING
        left = self.returnable()
        if not left:
            raise ReturnNotAllowedError("nothing of the order has been delivered, or all of it is being returned")
        lines: list[Allocation] = []
        for sku, quantity in sorted(wanted.items()):
            available = sum(q for (s, _), q in left.items() if s == sku)
            if quantity > available:
                raise ReturnNotAllowedError(f"{sku}: {quantity} to return, but {available} delivered and not returned")
            for (s, warehouse), q in sorted(left.items()):
                if s != sku or quantity == 0:
                    continue
                take = min(q, quantity)
                lines.append(Allocation(sku=sku, warehouse_id=warehouse, quantity=take))
                quantity -= take
        requested = OrderReturnRequested(
            order_id=self.order_id, return_id=return_id, lines=lines, reason=reason, requested_by=requested_by
        )
        return Decision(
            events=(requested,),
            commands=(AuthoriseReturn(order_id=self.order_id, return_id=return_id, lines=lines, reason=reason),),
        )

    def _return_moved(self, return_id: UUID, status: str, before: str) -> Decision:
        self._require()
        known = self.returns.get(return_id)
        if known is None or known.status != before:
            return NOTHING
        return Decision(events=(OrderReturnUpdated(order_id=self.order_id, return_id=return_id, status=status),))

    def on_return_authorised(self, reply: ReturnAuthorised) -> Decision:
        return self._return_moved(reply.return_id, "authorised", "requested")

    def on_return_received(self, reply: ReturnReceived) -> Decision:
        return self._return_moved(reply.return_id, "received", "authorised")

    def on_return_inspected(self, reply: ReturnInspected) -> Decision:
        """Restock what can be sold again, refund every returned line at the price it was bought for."""
        placed = self._require()
        known = self.returns.get(reply.return_id)
        if known is None or known.status not in ("requested", "authorised", "received"):
            return NOTHING
        prices: dict[str, int] = {}
        for line in placed.lines:
            prices.setdefault(line.sku, line.unit_price_minor)
        refund = sum(prices.get(line.sku, 0) * line.quantity for line in known.lines)
        inspected = OrderReturnInspected(
            order_id=self.order_id,
            return_id=reply.return_id,
            sellable=reply.sellable,
            unsellable=reply.unsellable,
            refund_minor=refund,
            currency=placed.currency,
        )
        commands: list[Command] = []
        if reply.sellable:
            commands.append(RestockItems(order_id=self.order_id, return_id=reply.return_id, lines=reply.sellable))
        if refund > 0 and self.payment_id is not None:
            # Last, so that the saga's deadline watches the refund (inventory's restock has no deadline).
            commands.append(
                RefundPayment(
                    order_id=self.order_id,
                    payment_id=self.payment_id,
                    amount_minor=refund,
                    currency=placed.currency,
                    reason=_return_reason(reply.return_id),
                )
            )
        events: list[Event] = [inspected]
        if refund == 0 and not reply.sellable:
            events.append(OrderReturnCompleted(order_id=self.order_id, return_id=reply.return_id))
        return Decision(events=tuple(events), commands=tuple(commands))

    def _return_refunded(self, reply: PaymentRefunded) -> Decision:
        """A partial refund went through: the one in flight of that amount; else a late answer to one that
        was given up on (parked, skipped or resolved meanwhile), which is recorded all the same."""
        partial = self._requested_refund(reply.amount_minor) or next(
            (
                r
                for r in self.partial_refunds.values()
                if r.status != "refunded" and r.amount_minor == reply.amount_minor
            ),
            None,
        )
        if partial is None:
            return NOTHING
        if partial.shipment_id is not None:
            return Decision(
                events=(
                    OrderShortShipRefunded(
                        order_id=self.order_id,
                        shipment_id=partial.shipment_id,
                        refund_id=reply.refund_id,
                        amount_minor=reply.amount_minor,
                        currency=reply.currency,
                        lines=partial.lines,
                    ),
                )
            )
        match = self.returns.get(partial.return_id) if partial.return_id is not None else None
        if match is None or match.refunded:
            return NOTHING
        events: list[Event] = [
            OrderReturnRefunded(
                order_id=self.order_id,
                return_id=match.return_id,
                refund_id=reply.refund_id,
                amount_minor=reply.amount_minor,
                currency=reply.currency,
                lines=match.lines,
            )
        ]
        if match.restocked and match.status != "completed":
            events.append(OrderReturnCompleted(order_id=self.order_id, return_id=match.return_id))
        return Decision(events=tuple(events))

    def on_items_restocked(self, reply: ItemsRestocked) -> Decision:
        self._require()
        known = self.returns.get(reply.return_id)
        if known is None or known.status != "inspected" or known.restocked:
            return NOTHING
        events: list[Event] = [
            OrderReturnRestocked(order_id=self.order_id, return_id=reply.return_id, lines=reply.lines)
        ]
        if self._return_refund_settled(known):
            events.append(OrderReturnCompleted(order_id=self.order_id, return_id=reply.return_id))
        return Decision(events=tuple(events))


def _short_ship_reason(warehouse_id: str, shipment_id: UUID) -> str:
    return f"not shipped from {warehouse_id} ({shipment_id})"


def _return_reason(return_id: UUID) -> str:
    return f"return {return_id}"
