"""What the order queries return: the API's response bodies, and the order's view made from its aggregate."""

from collections.abc import Sequence
from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, Field

from oms_events import Envelope, Message
from order_service.domain.order import Order
from order_service.domain.timeline import describe


class TimelineEntry(BaseModel):
    at: datetime
    event: str
    description: str


class ShipmentView(BaseModel):
    shipment_id: UUID
    warehouse_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date


class ReturnLineView(BaseModel):
    sku: str
    warehouse_id: str
    quantity: int


class ReturnView(BaseModel):
    return_id: UUID
    status: str = Field(description="requested, authorised, received, inspected or completed")
    lines: list[ReturnLineView]
    requested_by: str
    refund_minor: int = Field(description="What the returned lines are refunded (known once inspected)")
    refunded: bool
    restocked: bool = Field(description="The units that can be sold again are back on hand (or there are none)")


class RefundView(BaseModel):
    """A refund of part of the payment while the order goes on: units not shipped, or a return."""

    refund: str = Field(description="`short-ship:<shipment_id>` or `return:<return_id>`; name it in an operator action")
    shipment_id: UUID | None = None
    return_id: UUID | None = None
    amount_minor: int
    currency: str
    status: str = Field(
        description="requested, refunded, failed (waits for an operator: retry, skip or resolve), skipped or resolved"
    )
    failure_code: str | None = Field(default=None, description="Why it failed: payment's reason code, or no_answer")
    failure: str | None = None
    attempt: int = Field(description="Distinct refund requests made (a retry after a refusal is a new one)")


class ReturnAccepted(BaseModel):
    order_id: UUID
    return_id: UUID
    status: str
    lines: list[ReturnLineView]


class OrderLineView(BaseModel):
    sku: str
    quantity: int
    unit_price_minor: int


class OrderView(BaseModel):
    order_id: UUID
    status: str
    channel: str
    external_reference: str
    customer_id: str
    lines: list[OrderLineView]
    currency: str
    total_minor: int
    delivery_method: str
    rejection_reason: str | None
    cancel_reason: str | None = None
    attention_step: str | None = None
    attention_reason: str | None = None
    hold_reason: str | None = Field(
        default=None, description="Set while the order is on hold, or held until its stock is reserved"
    )
    held_by: str | None = None
    tracking_token: str | None = Field(
        default=None, description="Give it to the customer: GET /orders/{id}/tracking?token="
    )
    shipments: list[ShipmentView]
    returns: list[ReturnView] = []
    refunds: list[RefundView] = Field(
        default=[], description="Partial refunds (units not shipped, returns); `failed` ones wait for an operator"
    )
    timeline: list[TimelineEntry]


def order_view(order: Order, timeline: Sequence[tuple[Envelope, Message]]) -> OrderView:
    """The view of an order from its aggregate and its stream (envelope and event, in stream order)."""
    order_id = order.order_id
    placed = order.placed
    assert placed is not None
    assert order.status is not None
    return OrderView(
        order_id=order_id,
        status=order.status.value,
        channel=placed.channel.value,
        external_reference=placed.external_reference,
        customer_id=placed.customer.customer_id,
        lines=[OrderLineView(**line.model_dump()) for line in placed.lines],
        currency=placed.currency,
        total_minor=placed.total_minor,
        delivery_method=placed.delivery_method.value,
        rejection_reason=order.rejection_reason,
        cancel_reason=order.cancel_reason,
        attention_step=order.attention_step.value if order.attention_step else None,
        attention_reason=order.attention_reason,
        hold_reason=order.hold_reason if order.held else None,
        held_by=order.held_by if order.held else None,
        shipments=[ShipmentView(**vars(s)) for s in order.shipments],
        returns=[
            ReturnView(
                return_id=r.return_id,
                status=r.status,
                lines=[line.model_dump() for line in r.lines],
                requested_by=r.requested_by,
                refund_minor=r.refund_minor,
                refunded=r.refunded,
                restocked=r.restocked,
            )
            for r in order.returns.values()
        ],
        refunds=[
            RefundView(
                refund=r.refund,
                shipment_id=r.shipment_id,
                return_id=r.return_id,
                amount_minor=r.amount_minor,
                currency=r.currency,
                status=r.status,
                failure_code=r.failure_code,
                failure=r.failure,
                attempt=r.attempt,
            )
            for r in order.partial_refunds.values()
        ],
        timeline=[TimelineEntry(at=s.occurred_at, event=s.type, description=describe(e)) for s, e in timeline],
    )


class PendingStepView(BaseModel):
    """The step the order's saga waits on: the command it sent and when it gives up waiting."""

    awaiting: str = Field(description="The step: the reply the saga waits for")
    command: str = Field(description="The command sent for it (re-sent as is on a retry)")
    attempts: int = Field(description="Sends so far; the saga re-sends an unanswered command up to SAGA_MAX_ATTEMPTS")
    deadline_at: datetime = Field(description="When the saga re-sends or, after the last send, compensates or parks")
    state: str = Field(description="`waiting`, or `parked` (needs attention: an operator acts)")
    updated_at: datetime = Field(description="When the command was last sent, or the step parked")


class SagaView(BaseModel):
    """Where an order's saga stands, beside its timeline (`GET /orders/{id}`)."""

    order_id: UUID
    pending_step: PendingStepView | None = Field(description="None once the saga waits on nothing")
