"""Value objects shared by several messages."""

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
MinorUnits = Annotated[int, Field(ge=0, description="Amount in the currency's minor units (cents)")]
Quantity = Annotated[int, Field(gt=0, le=10_000)]


class ValueObject(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Channel(StrEnum):
    WEB = "web"
    MARKETPLACE = "marketplace"
    PHONE = "phone"
    STORE = "store"


class DeliveryMethod(StrEnum):
    STANDARD = "standard"
    EXPEDITED = "expedited"
    NEXT_DAY = "next_day"


class Customer(ValueObject):
    customer_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{6,20}$")


class Address(ValueObject):
    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: CountryCode


class OrderLine(ValueObject):
    sku: Sku
    quantity: Quantity
    unit_price_minor: MinorUnits


class StockLine(ValueObject):
    sku: Sku
    quantity: Quantity


class Allocation(ValueObject):
    """Units of one sku taken from one warehouse."""

    sku: Sku
    warehouse_id: str = Field(min_length=1)
    quantity: Quantity


class Shortage(ValueObject):
    sku: Sku
    requested: int = Field(ge=0)
    available: int = Field(ge=0)


class ShipmentTracking(ValueObject):
    shipment_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date
