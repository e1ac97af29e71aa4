"""What the order search, stuck-order and tracking queries return: the API's response bodies."""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

OrderStatusName = Literal[
    "placed",
    "awaiting_payment",
    "confirmed",
    "partially_shipped",
    "shipped",
    "releasing_stock",
    "rejected",
    "cancelling",
    "cancelled",
    "needs_attention",
    "on_hold",
    "backordered",
]
ShipmentStatusName = Literal["not_shipped", "partially_shipped", "shipped"]


class OrderSummaryView(BaseModel):
    order_id: UUID
    channel: str
    external_reference: str
    customer_id: str
    status: str
    total_minor: int
    currency: str
    placed_at: datetime
    last_event_at: datetime = Field(description="When the order's latest event occurred")
    last_event_type: str
    version: int = Field(description="Number of events in the order's stream")
    shipment_status: ShipmentStatusName
    carrier: str | None
    tracking_number: str | None


class OrderPage(BaseModel):
    orders: list[OrderSummaryView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class FailedRefundView(BaseModel):
    """A partial refund that failed: it waits for an operator (POST /orders/{id}/actions with `refund`)."""

    refund: str = Field(description="`short-ship:<shipment_id>` or `return:<return_id>`")
    amount_minor: int
    currency: str
    reason_code: str
    reason: str
    failed_at: datetime


class StuckOrderView(BaseModel):
    order_id: UUID
    channel: str
    external_reference: str
    customer_id: str
    status: str
    placed_at: datetime
    last_event_at: datetime
    last_event_type: str
    stuck_for_s: float = Field(description="Seconds since the order's latest event")
    reason: Literal["needs_attention", "no_progress", "on_hold", "refund_failed"]
    failed_refunds: list[FailedRefundView] = Field(default=[], description="Partial refunds waiting for an operator")


class StuckOrders(BaseModel):
    as_of: datetime
    older_than_s: float
    orders: list[StuckOrderView] = Field(description="Oldest latest event first")


class ShipmentTrackingView(BaseModel):
    shipment_id: UUID
    warehouse_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date
    shipped_at: datetime
    status: str = Field(
        default="shipped",
        description="shipped, in_transit, out_for_delivery, delivered, delivery_failed or returned_to_sender",
    )
    status_at: datetime | None = Field(default=None, description="When the carrier reported the status")
    location: str | None = Field(default=None, description="Where the carrier last saw the parcel")
    delivered_at: datetime | None = None
    note: str | None = Field(default=None, description="Why a delivery failed or the parcel went back")


class PreparingShipmentView(BaseModel):
    """A shipment still in its warehouse (or one that will not ship: `failed`, `cancelled`)."""

    shipment_id: UUID
    warehouse_id: str
    status: str = Field(description="created, picking, picked, packed, failed or cancelled")
    status_at: datetime | None = None


class TrackingView(BaseModel):
    """Where the order is, without its history: for customers and support."""

    order_id: UUID
    channel: str
    status: str
    shipment_status: ShipmentStatusName
    carrier: str | None = Field(description="The latest shipment's carrier")
    tracking_number: str | None
    tracking_url: str | None
    estimated_delivery: date | None
    last_update: datetime = Field(description="When the order's latest event occurred")
    shipments: list[ShipmentTrackingView] = Field(description="Every shipment that left; a split order has several")
    preparing: list[PreparingShipmentView] = Field(
        default=[], description="Shipments not handed to a carrier (yet): being picked and packed, or given up"
    )
    delivered: bool = Field(
        default=False, description="Every shipment of the order has been delivered (none is still being prepared)"
    )
