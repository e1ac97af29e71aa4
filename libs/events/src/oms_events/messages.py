"""Events (past tense) and commands (imperative) of the order flow.

Rules of the contract: fields are only added, never renamed or retyped. A breaking change is a new
`schema_version` of the same type plus an upcaster in `oms_events.upcasters`. Consumers ignore
fields they do not know.
"""

from datetime import date, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from oms_events import topics
from oms_events.values import (
    Address,
    Allocation,
    Channel,
    CountryCode,
    CurrencyCode,
    Customer,
    DeliveryMethod,
    FieldProblem,
    MinorUnits,
    OrderLine,
    OrderSubmission,
    Parcel,
    Shortage,
    Sku,
    StockLine,
    order_id_for,
)


class ContractMessage(BaseModel):
    """Any message of the contract: its type, version, topic and kind, its Kafka key and the correlation
    id its envelope carries.

    Most messages concern one order (`Message`, keyed by the order id). A few concern something else,
    e.g. the stock of one sku (`StockEvent`, keyed by the sku): they subclass this root directly and say
    what they are keyed and correlated by, by overriding `key` and `correlation_id`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    topic: ClassVar[str]
    message_kind: ClassVar[Literal["event", "command"]]
    key_field: ClassVar[str] = "order_id"
    """The payload field the Kafka key is taken from (documented in the JSON Schema as `x-key`)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "message_type" not in cls.__dict__ and cls.__name__ not in _ABSTRACT:
            cls.message_type = cls.__name__

    @property
    def key(self) -> str:
        """The Kafka key: everything about one key goes to one partition, in order."""
        raise NotImplementedError

    @property
    def correlation_id(self) -> str:
        """What the envelope's `correlation_id` names: the key, unless a message says otherwise."""
        return self.key


_ABSTRACT = frozenset({"Message", "Event", "Command", "StockEvent"})


class Message(ContractMessage):
    """A message of the contract about one order."""

    order_id: UUID

    @property
    def key(self) -> str:
        """The Kafka key: everything about one order goes to one partition."""
        return str(self.order_id)


class Event(Message):
    message_kind: ClassVar[Literal["event", "command"]] = "event"


class Command(Message):
    message_kind: ClassVar[Literal["event", "command"]] = "command"


class StockEvent(ContractMessage):
    """An event about the stock of one sku (not about one order), keyed by the sku: every change of a
    sku's stock reaches subscribers on one partition, in order."""

    message_kind: ClassVar[Literal["event", "command"]] = "event"
    key_field: ClassVar[str] = "sku"

    sku: Sku

    @property
    def key(self) -> str:
        return self.sku


# ---------------------------------------------------------------- orders (order-service)


class OrderPlaced(Event):
    """An order was accepted from a sales channel. The payment token is not part of it."""

    topic = topics.ORDERS_EVENTS

    channel: Channel
    external_reference: str = Field(min_length=1, max_length=100)
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1)
    currency: CurrencyCode
    total_minor: MinorUnits
    shipping_address: Address
    delivery_method: DeliveryMethod
    billing_address: Address | None = Field(default=None, description="Where the card is billed, when known")
    allow_backorder: bool = Field(
        default=False, description="Wait for stock that is short (backorder) instead of rejecting the order"
    )


class OrderStockReserved(Event):
    topic = topics.ORDERS_EVENTS

    reservation_id: UUID
    allocations: list[Allocation]


class OrderConfirmed(Event):
    """Stock is reserved and payment captured: the order will be fulfilled."""

    topic = topics.ORDERS_EVENTS

    payment_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode


class OrderPaymentDeclined(Event):
    topic = topics.ORDERS_EVENTS

    reason_code: str
    reason: str


class OrderStockReleased(Event):
    topic = topics.ORDERS_EVENTS

    reservation_id: UUID | None


class OrderShipped(Event):
    topic = topics.ORDERS_EVENTS

    shipment_id: UUID
    warehouse_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date
    lines: list[Allocation] = Field(
        default=[], description="The units in the shipment (empty before the field existed)"
    )


class OrderRejected(Event):
    """The order cannot be fulfilled; `reason` is in plain words for the customer."""

    topic = topics.ORDERS_EVENTS

    reason_code: str = Field(
        description="out_of_stock, payment_declined, no_reply (a step timed out) or resolved_by_operator"
    )
    reason: str


class OrderCancellationRequested(Event):
    """A cancel was accepted; what was done is being undone, in reverse order."""

    topic = topics.ORDERS_EVENTS

    reason: str
    requested_by: str


class OrderPaymentRefunded(Event):
    topic = topics.ORDERS_EVENTS

    refund_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode


class OrderPaymentCaptured(Event):
    """Payment was captured for an order that is being cancelled: it will be refunded."""

    topic = topics.ORDERS_EVENTS

    payment_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode


class OrderStepTimedOut(Event):
    """A saga step got no reply after every re-send; the saga compensates or asks for an operator."""

    topic = topics.ORDERS_EVENTS

    step: str
    attempts: int


class OrderCancelled(Event):
    """Every step done for the order was undone: stock released and any payment refunded.

    Version 2 separates what the customer is told (`customer_message`, fixed wording per
    `reason_code`) from the free-text `note` of whoever cancelled; version 1 had one `reason`, which
    reached customers as typed. Version 1 is read through `oms_events.upcasters`.
    """

    topic = topics.ORDERS_EVENTS
    schema_version = 2

    reason_code: str = Field(
        description=(
            "requested, resolved_by_operator, reservation_expired, fulfilment_failed, or unspecified (read from v1)"
        )
    )
    customer_message: str
    note: str
    requested_by: str


class OrderNeedsAttention(Event):
    """The saga cannot go on by itself (a compensation keeps failing): an operator must act."""

    topic = topics.ORDERS_EVENTS

    step: str
    reason: str


class OrderOperatorActionTaken(Event):
    """An operator retried, skipped or resolved the step an order was parked on."""

    topic = topics.ORDERS_EVENTS

    action: Literal["retry", "skip", "resolve"]
    operator: str
    note: str


class OrderPutOnHold(Event):
    """The order was put on hold before its payment: by an operator (`held_by` names them) or by a risk
    rule (`held_by` is `risk-rule`). Nothing more happens to it until the hold is released or the order
    is cancelled."""

    topic = topics.ORDERS_EVENTS

    reason: str
    held_by: str


class OrderHoldReleased(Event):
    """An operator released the order's hold; the saga goes on (its payment is captured)."""

    topic = topics.ORDERS_EVENTS

    released_by: str
    note: str


class OrderBackordered(Event):
    """Some of the order's stock is short and the order allows a backorder: it waits for stock (no payment
    is attempted meanwhile). When stock arrives inventory reserves it and the saga goes on."""

    topic = topics.ORDERS_EVENTS

    shortages: list[Shortage]


class OrderReservationExpired(Event):
    """The order's stock reservation expired before the order was paid; the stock is back on sale and the
    order is cancelled (any capture in flight is refunded)."""

    topic = topics.ORDERS_EVENTS

    reservation_id: UUID


class SubmitOrder(Command, OrderSubmission):
    """An upstream system places an order on the intake topic: exactly what `POST /orders` takes.

    The submitter has no order id of its own: `order_id` must be
    `oms_events.values.order_id_for(channel, external_reference)`, and it is the Kafka key. The same
    channel + external reference submitted again (by either path) refers to the first order.
    """

    topic = topics.ORDERS_INTAKE

    # Declared in Message, validated after the submission's fields (they come first in the MRO), so
    # `info.data` holds the channel and reference when they are valid.
    @field_validator("order_id")
    @classmethod
    def _derived_order_id(cls, order_id: UUID, info: ValidationInfo) -> UUID:
        channel, reference = info.data.get("channel"), info.data.get("external_reference")
        if channel is not None and reference is not None:
            expected = order_id_for(channel, reference)
            if order_id != expected:
                raise ValueError(f"must be order_id_for(channel, external_reference) = {expected}")
        return order_id


class OrderShipmentUpdated(Event):
    """A shipment of the order moved (created, picking, picked, packed, in transit, out for delivery,
    delivered, delivery failed, returned to sender, cancelled, failed), as fulfilment reported it. The
    order's tracking view is built from these; `Shipped` itself is recorded as `OrderShipped`."""

    topic = topics.ORDERS_EVENTS

    shipment_id: UUID
    warehouse_id: str
    status: str
    location: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    estimated_delivery: date | None = None
    reported_at: datetime | None = None
    note: str | None = None


class OrderFulfilmentFailed(Event):
    """Fulfilment could not ship the order after its payment was captured: the saga refunds, releases the
    stock and cancels the order."""

    topic = topics.ORDERS_EVENTS

    shipment_id: UUID | None
    warehouse_id: str | None
    reason_code: str
    reason: str


class OrderFulfilmentCancelled(Event):
    """Fulfilment cancelled every shipment of the order (none had shipped): the saga undoes the rest."""

    topic = topics.ORDERS_EVENTS

    shipment_ids: list[UUID]


class OrderShortShipped(Event):
    """Units of a shipment will not ship (a short pick, or a warehouse that found nothing after another had
    shipped): their value is refunded."""

    topic = topics.ORDERS_EVENTS

    shipment_id: UUID
    warehouse_id: str
    short: list[Allocation] = Field(min_length=1)
    refund_minor: MinorUnits
    currency: CurrencyCode


class OrderShortShipRefunded(Event):
    """The value of units that did not ship was refunded."""

    topic = topics.ORDERS_EVENTS

    shipment_id: UUID
    refund_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode
    lines: list[Allocation] = Field(default=[], description="The units not shipped (empty in older events)")


class OrderRefundFailed(Event):
    """A partial refund (units not shipped, or a return) was refused by payment or went unanswered. Only
    that refund is parked for an operator (retry, skip or resolve it); the order itself goes on.
    `refund` names it within the order: `short-ship:<shipment_id>` or `return:<return_id>`."""

    topic = topics.ORDERS_EVENTS

    refund: str
    shipment_id: UUID | None = None
    return_id: UUID | None = None
    amount_minor: MinorUnits
    currency: CurrencyCode
    reason_code: str = Field(description="payment's reason code (e.g. exceeds_captured), or no_answer")
    reason: str


class OrderRefundActionTaken(Event):
    """An operator acted on a failed partial refund: `retry` sends it again, `skip` gives it up,
    `resolve` says it was settled outside the system. The order's status does not change."""

    topic = topics.ORDERS_EVENTS

    refund: str
    action: Literal["retry", "skip", "resolve"]
    operator: str
    note: str


class OrderCancellationRefused(Event):
    """A cancel that came once fulfilment had started could not stop it (part of the order had shipped):
    the order goes on."""

    topic = topics.ORDERS_EVENTS

    reason: str


class OrderReturnRequested(Event):
    """A customer or ops asked to send delivered units back; `lines` name the warehouse each unit left from."""

    topic = topics.ORDERS_EVENTS

    return_id: UUID
    lines: list[Allocation] = Field(min_length=1)
    reason: str
    requested_by: str


class OrderReturnUpdated(Event):
    """The return moved in the warehouse: `authorised` or `received`."""

    topic = topics.ORDERS_EVENTS

    return_id: UUID
    status: str


class OrderReturnInspected(Event):
    """The returned units were inspected: sellable ones go back on hand, all returned lines are refunded."""

    topic = topics.ORDERS_EVENTS

    return_id: UUID
    sellable: list[Allocation]
    unsellable: list[Allocation]
    refund_minor: MinorUnits
    currency: CurrencyCode


class OrderReturnRefunded(Event):
    """The returned units were refunded."""

    topic = topics.ORDERS_EVENTS

    return_id: UUID
    refund_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode
    lines: list[Allocation] = Field(default=[], description="The units returned (empty in older events)")


class OrderReturnRestocked(Event):
    topic = topics.ORDERS_EVENTS

    return_id: UUID
    lines: list[Allocation]


class OrderReturnCompleted(Event):
    """The return is refunded and its sellable units are back on hand."""

    topic = topics.ORDERS_EVENTS

    return_id: UUID


class OrderIntakeRejected(Event):
    """A submission on the intake topic failed validation; nothing was placed. `channel` and
    `external_reference` are copied from the submission when it had them; `errors` names every bad field
    (dotted paths, e.g. `lines.0.quantity`). The submission itself went to the dead-letter topic."""

    topic = topics.ORDERS_EVENTS

    channel: str | None = None
    external_reference: str | None = None
    errors: list[FieldProblem]


# ---------------------------------------------------------------- inventory


class ReserveStock(Command):
    topic = topics.INVENTORY_COMMANDS

    lines: list[StockLine] = Field(min_length=1)
    allow_backorder: bool = Field(
        default=False,
        description="When stock is short, answer StockBackordered and reserve when stock arrives, instead of "
        "StockReservationFailed",
    )
    shipping_address: Address | None = Field(
        default=None, description="Where the order goes, for the warehouse-choosing rule (nearest warehouse)"
    )


class ReleaseStock(Command):
    topic = topics.INVENTORY_COMMANDS

    reason: str


class StockReserved(Event):
    """Every line of the order is reserved, atomically, with the warehouses chosen per line."""

    topic = topics.INVENTORY_EVENTS

    reservation_id: UUID
    allocations: list[Allocation] = Field(min_length=1)


class StockReservationFailed(Event):
    """Nothing was reserved: at least one line could not be served."""

    topic = topics.INVENTORY_EVENTS

    reason: str
    shortages: list[Shortage]


class RestockItems(Command):
    """Put returned units that can be sold again back on hand, in the warehouse that receives them.

    Sent by the order saga once a return is inspected; `return_id` makes a second one for the same return a
    no-op."""

    topic = topics.INVENTORY_COMMANDS

    return_id: UUID
    lines: list[Allocation] = Field(min_length=1)


class ItemsRestocked(Event):
    """The returned units are on hand again (the answer to RestockItems)."""

    topic = topics.INVENTORY_EVENTS

    return_id: UUID
    lines: list[Allocation] = Field(min_length=1)


class StockReleased(Event):
    """The order's reservation is released (`reservation_id` is None when there was none)."""

    topic = topics.INVENTORY_EVENTS

    reservation_id: UUID | None


class StockBackordered(Event):
    """Not enough stock for the order, which allows a backorder: nothing is reserved yet, the order waits in
    line (oldest first) and gets StockReserved when stock arrives, or StockReleased when it is cancelled."""

    topic = topics.INVENTORY_EVENTS

    shortages: list[Shortage] = Field(min_length=1)


class ReservationExpired(Event):
    """The order's reservation was not committed (paid) within its expiry: its units are available again."""

    topic = topics.INVENTORY_EVENTS

    reservation_id: UUID
    allocations: list[Allocation] = Field(min_length=1)
    expired_at: datetime


class StockLevelChanged(StockEvent):
    """The stock of one sku in one warehouse changed; the levels are the new ones, after the change.

    `cause`: adjustment, goods_receipt, purchase_order_receipt, restock, reservation, release, expiry,
    shipment, safety_stock or seed (demo stock loaded at start). `order_id` names the order when an order
    caused it (then it is also the envelope's correlation id). `reference` names the delivery note of a
    receipt, the purchase order, the return, the shipment, or (for an adjustment) the API key's name that
    made it; `reason` is an adjustment's reason. `sequence` counts the changes of this sku + warehouse
    (1, 2, ...) without gaps, so a reader can drop one it has already seen and notice one it missed.
    """

    topic = topics.INVENTORY_EVENTS

    warehouse_id: str = Field(min_length=1)
    on_hand: int = Field(ge=0)
    reserved: int = Field(ge=0)
    available: int = Field(ge=0)
    safety_stock: int = Field(ge=0)
    on_hand_change: int
    reserved_change: int
    cause: str
    reason: str | None = None
    order_id: UUID | None = None
    reference: str | None = None
    sequence: int = Field(ge=1)

    @property
    def correlation_id(self) -> str:
        return str(self.order_id) if self.order_id is not None else self.sku


class PurchaseOrderRaised(StockEvent):
    """Available stock of a sku in a warehouse fell to or below its reorder point: the ERP should order
    `quantity` from the supplier. There is at most one open purchase order per sku and warehouse."""

    topic = topics.INVENTORY_EVENTS

    purchase_order_id: UUID
    warehouse_id: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    available: int
    reorder_point: int = Field(ge=0)
    lead_time_days: int = Field(ge=0)
    expected_by: date


class PurchaseOrderReceived(StockEvent):
    """A purchase order's goods arrived and are on hand; the purchase order is closed."""

    topic = topics.INVENTORY_EVENTS

    purchase_order_id: UUID
    warehouse_id: str = Field(min_length=1)
    quantity: int = Field(gt=0)


# ---------------------------------------------------------------- payments


class CapturePayment(Command):
    """Take the order's payment: payment-service checks the risk, authorises, then captures.

    `reviewed` is set when an operator has reviewed the order after a `PaymentReviewRequired` (and
    released its hold): the risk check is skipped. The countries and the channel feed the risk check
    and the reconciliation; they are absent in commands from before they were added.
    """

    topic = topics.PAYMENTS_COMMANDS

    customer_id: str
    amount_minor: MinorUnits
    currency: CurrencyCode
    payment_token: str = Field(min_length=1, max_length=128)
    channel: str | None = None
    billing_country: CountryCode | None = None
    shipping_country: CountryCode | None = None
    reviewed: bool = False


class PaymentAuthorised(Event):
    """The gateway authorised (reserved) the amount on the card; the capture follows."""

    topic = topics.PAYMENTS_EVENTS

    payment_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode
    gateway_reference: str


class PaymentAuthorisationVoided(Event):
    """An authorisation was cancelled without capturing (the capture failed for good); nothing was taken."""

    topic = topics.PAYMENTS_EVENTS

    payment_id: UUID
    gateway_reference: str
    reason_code: str


class PaymentReviewRequired(Event):
    """The risk check wants a human to review the order before its payment is authorised.

    Nothing was authorised. The saga puts the order on hold; releasing the hold sends `CapturePayment`
    again with `reviewed` set. `rules` names the risk rules that fired (e.g. `amount_review`,
    `velocity`, `country_mismatch`)."""

    topic = topics.PAYMENTS_EVENTS

    payment_id: UUID
    reason_code: str
    reason: str
    rules: list[str] = []


class PaymentCaptured(Event):
    topic = topics.PAYMENTS_EVENTS

    payment_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode
    gateway_reference: str
    channel: str | None = None


class PaymentDeclined(Event):
    topic = topics.PAYMENTS_EVENTS

    payment_id: UUID
    reason_code: str
    reason: str


class RefundPayment(Command):
    """Refund (part of) a captured payment. Never more than was captured, in total."""

    topic = topics.PAYMENTS_COMMANDS

    payment_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode
    reason: str


class PaymentRefunded(Event):
    topic = topics.PAYMENTS_EVENTS

    payment_id: UUID
    refund_id: UUID
    amount_minor: MinorUnits
    currency: CurrencyCode


class PaymentRefundFailed(Event):
    topic = topics.PAYMENTS_EVENTS

    payment_id: UUID
    reason_code: str
    reason: str
    amount_minor: MinorUnits | None = Field(
        default=None, description="The refused request's amount (absent from events of older versions)"
    )
    currency: CurrencyCode | None = Field(default=None, description="The refused request's currency")


# ---------------------------------------------------------------- fulfilment


class ShipOrder(Command):
    topic = topics.FULFILMENT_COMMANDS

    allocations: list[Allocation] = Field(min_length=1)
    shipping_address: Address
    delivery_method: DeliveryMethod
    placed_at: datetime | None = Field(
        default=None,
        description="When the order was placed (its OrderPlaced's occurred_at), for fulfilment's "
        "placed-to-shipped times; absent from commands sent before the field existed",
    )


class Shipped(Event):
    """A shipment left its warehouse with the carrier. `lines` are the units in it (after short picks;
    empty in events recorded before the field existed), `service_level` the carrier's service."""

    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID
    warehouse_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date
    lines: list[Allocation] = []
    parcels: list[Parcel] = []
    service_level: str | None = None


class ShipmentCreated(Event):
    """A shipment for one warehouse's allocation of the order (a split order gets several)."""

    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID
    warehouse_id: str
    lines: list[Allocation] = Field(min_length=1)
    delivery_method: DeliveryMethod | None = None
    mode: Literal["automatic", "manual"] | None = Field(
        default=None,
        description="automatic: picked, packed and shipped at once (the events follow in the same commit); "
        "manual: warehouse staff do it",
    )


class ShipmentPickingStarted(Event):
    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID
    warehouse_id: str
    mode: Literal["automatic", "manual"] | None = Field(
        default=None, description="The warehouse's mode, as in ShipmentCreated (automatic: the same commit)"
    )


class ShipmentPicked(Event):
    """What was found on the shelves; `short` lists the units that were not (a short pick)."""

    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID
    warehouse_id: str
    picked: list[Allocation]
    short: list[Allocation] = []
    mode: Literal["automatic", "manual"] | None = Field(
        default=None, description="The warehouse's mode, as in ShipmentCreated (automatic: the same commit)"
    )


class ShipmentPacked(Event):
    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID
    warehouse_id: str
    parcels: list[Parcel] = Field(min_length=1)
    mode: Literal["automatic", "manual"] | None = Field(
        default=None, description="The warehouse's mode, as in ShipmentCreated (automatic: the same commit)"
    )


class CarrierUpdate(Event):
    """Base of the carrier's status reports on a shipment after it left the warehouse."""

    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID
    carrier: str
    tracking_number: str
    location: str | None = None
    reported_at: datetime = Field(description="When the carrier saw it (not when we heard of it)")
    update_id: str | None = Field(
        default=None, description="The carrier's id of the update (or a digest of it): the same id is one update"
    )
    superseded: bool = Field(
        default=False,
        description="True when the update arrived after a later status (out of order): recorded, but the "
        "shipment's status did not change",
    )


class ShipmentInTransit(CarrierUpdate):
    pass


class ShipmentOutForDelivery(CarrierUpdate):
    pass


class ShipmentDelivered(CarrierUpdate):
    pass


class ShipmentDeliveryFailed(CarrierUpdate):
    reason: str


class ShipmentReturnedToSender(CarrierUpdate):
    reason: str


class FulfilmentFailed(Event):
    """The order cannot be shipped (in full or in part); the saga compensates."""

    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID | None
    warehouse_id: str | None
    reason_code: str = Field(description="short_pick (nothing of the shipment was found); more may be added")
    reason: str


class AuthoriseReturn(Command):
    """Expect these delivered units back (a return authorisation for the warehouse)."""

    topic = topics.FULFILMENT_COMMANDS

    return_id: UUID
    lines: list[Allocation] = Field(min_length=1)
    reason: str


class ReturnAuthorised(Event):
    topic = topics.FULFILMENT_EVENTS

    return_id: UUID
    lines: list[Allocation] = Field(min_length=1)


class ReturnReceived(Event):
    """The parcel with the returned units arrived at the warehouse."""

    topic = topics.FULFILMENT_EVENTS

    return_id: UUID
    received_by: str


class ReturnInspected(Event):
    """Every returned unit was inspected: `sellable` ones can be sold again, `unsellable` ones cannot."""

    topic = topics.FULFILMENT_EVENTS

    return_id: UUID
    sellable: list[Allocation]
    unsellable: list[Allocation]
    inspected_by: str


class CancelShipment(Command):
    """Cancel the order's shipments that have not left their warehouses. All or nothing: when one of them
    has shipped, nothing is cancelled and the answer is `ShipmentCancellationRefused`."""

    topic = topics.FULFILMENT_COMMANDS

    reason: str
    requested_by: str


class ShipmentCancelled(Event):
    """One shipment was cancelled before it shipped; its units stay reserved until the saga releases them."""

    topic = topics.FULFILMENT_EVENTS

    shipment_id: UUID
    warehouse_id: str
    reason: str


class FulfilmentCancelled(Event):
    """The answer to CancelShipment: every shipment of the order is cancelled (none had shipped)."""

    topic = topics.FULFILMENT_EVENTS

    shipment_ids: list[UUID]
    reason: str


class ShipmentCancellationRefused(Event):
    """The answer to CancelShipment when part of the order has shipped already: nothing was cancelled."""

    topic = topics.FULFILMENT_EVENTS

    shipped_shipment_ids: list[UUID]
    reason: str


# ---------------------------------------------------------------- notifications


class NotificationSent(Event):
    topic = topics.NOTIFICATIONS_EVENTS

    notification_id: UUID
    kind: str
    channel: Literal["email", "sms"]
    recipient_masked: str


class NotificationFailed(Event):
    """A customer message could not be delivered and will not be tried again.

    `reason_code`: `bad_address` (the address or number cannot be used), `unsubscribed` (the recipient
    told the provider to stop), `rejected` (the provider or mail server refused the message for good),
    or `gave_up` (transient failures until the attempts ran out). `reason` says more, never with the
    full address or number."""

    topic = topics.NOTIFICATIONS_EVENTS

    notification_id: UUID
    kind: str
    channel: Literal["email", "sms"]
    recipient_masked: str
    reason_code: str
    reason: str
    attempts: int = Field(ge=0)


MESSAGE_TYPES: tuple[type[ContractMessage], ...] = (
    OrderPlaced,
    OrderStockReserved,
    OrderConfirmed,
    OrderPaymentDeclined,
    OrderStockReleased,
    OrderShipped,
    OrderRejected,
    OrderCancellationRequested,
    OrderPaymentRefunded,
    OrderPaymentCaptured,
    OrderStepTimedOut,
    OrderCancelled,
    OrderNeedsAttention,
    OrderOperatorActionTaken,
    OrderPutOnHold,
    OrderHoldReleased,
    OrderBackordered,
    OrderReservationExpired,
    SubmitOrder,
    OrderIntakeRejected,
    OrderShipmentUpdated,
    OrderFulfilmentFailed,
    OrderFulfilmentCancelled,
    OrderShortShipped,
    OrderShortShipRefunded,
    OrderRefundFailed,
    OrderRefundActionTaken,
    OrderCancellationRefused,
    OrderReturnRequested,
    OrderReturnUpdated,
    OrderReturnInspected,
    OrderReturnRefunded,
    OrderReturnRestocked,
    OrderReturnCompleted,
    ReserveStock,
    ReleaseStock,
    StockReserved,
    StockReservationFailed,
    StockReleased,
    StockBackordered,
    ReservationExpired,
    StockLevelChanged,
    PurchaseOrderRaised,
    PurchaseOrderReceived,
    RestockItems,
    ItemsRestocked,
    CapturePayment,
    PaymentAuthorised,
    PaymentAuthorisationVoided,
    PaymentReviewRequired,
    PaymentCaptured,
    PaymentDeclined,
    RefundPayment,
    PaymentRefunded,
    PaymentRefundFailed,
    ShipOrder,
    Shipped,
    ShipmentCreated,
    ShipmentPickingStarted,
    ShipmentPicked,
    ShipmentPacked,
    ShipmentInTransit,
    ShipmentOutForDelivery,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentReturnedToSender,
    FulfilmentFailed,
    CancelShipment,
    ShipmentCancelled,
    FulfilmentCancelled,
    ShipmentCancellationRefused,
    AuthoriseReturn,
    ReturnAuthorised,
    ReturnReceived,
    ReturnInspected,
    NotificationSent,
    NotificationFailed,
)

_BY_TYPE = {m.message_type: m for m in MESSAGE_TYPES}


def message_class(message_type: str) -> type[ContractMessage] | None:
    return _BY_TYPE.get(message_type)
