"""What the order queries return: the API's response bodies."""

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, Field


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
