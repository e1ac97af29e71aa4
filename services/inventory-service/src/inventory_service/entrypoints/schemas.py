"""The HTTP API's request and response bodies."""

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from oms_events.values import MAX_AMOUNT_MINOR, MAX_STOCK_CHANGE, CurrencyCode, PlainText, Sku, WarehouseId
from oms_runtime.http_api import ErrorBody as ErrorBody


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WarehouseRequest(Request):
    name: PlainText = Field(min_length=1, max_length=200)
    location: PlainText = Field(min_length=1, max_length=200, description="Address or city, for people")
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class WarehouseView(BaseModel):
    warehouse_id: str
    name: str
    location: str
    country: str | None
    latitude: float | None
    longitude: float | None


class AdjustmentRequest(Request):
    sku: Sku
    warehouse_id: WarehouseId
    quantity_change: int = Field(
        ge=-MAX_STOCK_CHANGE,
        le=MAX_STOCK_CHANGE,
        description="Units added (positive) or removed (negative) from on hand",
    )
    reason: PlainText = Field(min_length=1, max_length=500, description="Why: count correction, damage, theft, ...")


class GoodsReceiptRequest(Request):
    sku: Sku
    warehouse_id: WarehouseId
    quantity: int = Field(gt=0, le=MAX_STOCK_CHANGE)
    reference: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Delivery note or ASN number; the same reference for the same sku and warehouse is refused "
        "(409 duplicate_receipt), so a retry never counts the goods twice",
    )


class SafetyStockRequest(Request):
    safety_stock: int = Field(ge=0, le=MAX_STOCK_CHANGE)


class UnitCostRequest(Request):
    unit_cost_minor: int = Field(ge=0, le=MAX_AMOUNT_MINOR, description="What one unit is worth, in minor units")
    currency: CurrencyCode


class PolicyRequest(Request):
    reorder_point: int = Field(ge=0, le=MAX_STOCK_CHANGE)
    reorder_quantity: int | None = Field(
        default=None, gt=0, le=MAX_STOCK_CHANGE, description="Order this many (or give order_up_to)"
    )
    order_up_to: int | None = Field(
        default=None, gt=0, le=MAX_STOCK_CHANGE, description="Order up to this level (or reorder_quantity)"
    )
    lead_time_days: int = Field(ge=0, le=365)


class PolicyView(BaseModel):
    sku: str
    warehouse_id: str
    reorder_point: int
    reorder_quantity: int | None
    order_up_to: int | None
    lead_time_days: int


class PolicyAccepted(PolicyView):
    purchase_order_raised: UUID | None = Field(description="Set when the stock was at or below the reorder point")


class ReceivePurchaseOrderRequest(Request):
    quantity: int | None = Field(
        default=None, gt=0, le=MAX_STOCK_CHANGE, description="Units that arrived (default: what was ordered)"
    )


class PurchaseOrderView(BaseModel):
    purchase_order_id: UUID
    sku: str
    warehouse_id: str
    quantity: int
    status: str
    expected_by: date
    received_quantity: int | None
    created_at: datetime
    received_at: datetime | None


class LevelView(BaseModel):
    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    available: int
    safety_stock: int


class SkuStockView(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    warehouses: list[LevelView]


class WarehouseStockView(BaseModel):
    warehouse_id: str
    levels: list[LevelView]


class AvailabilityEntry(BaseModel):
    warehouse_id: str
    on_hand: int
    reserved: int
    available: int
    safety_stock: int
    sequence: int
    updated_at: str


class AvailabilityView(BaseModel):
    sku: str
    available: int
    warehouses: list[AvailabilityEntry]


class RebuildView(BaseModel):
    levels: int
    cleared: int


class BackorderLine(BaseModel):
    sku: str
    quantity: int


class BackorderView(BaseModel):
    order_id: UUID
    reservation_id: UUID
    waiting_since: datetime | None
    lines: list[BackorderLine]


class WarehouseTotalsView(BaseModel):
    warehouse_id: str
    skus: int
    on_hand: int
    reserved: int
    available: int


class LowStockView(LevelView):
    reorder_point: int | None
    reasons: list[str]
    open_purchase_order_id: UUID | None


class StockValueLineView(BaseModel):
    sku: str
    warehouse_id: str
    on_hand: int
    unit_cost_minor: int
    currency: str
    value_minor: int


class StockValueView(BaseModel):
    lines: list[StockValueLineView]
    totals_minor: dict[str, int]
    unpriced_skus: list[str]


class ReservationLineView(BaseModel):
    sku: str
    warehouse_id: str
    quantity: int


class ReservationView(BaseModel):
    order_id: UUID
    reservation_id: UUID
    status: str = Field(description="reserved, backordered, committed, released, expired or failed")
    expires_at: datetime | None = Field(description="When an unpaid reservation is released; null once paid")
    created_at: datetime | None
    allocations: list[ReservationLineView]
    requested: list[BackorderLine]
