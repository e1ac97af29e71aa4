"""The HTTP API's request and response bodies."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from oms_events.values import Address, Channel, CurrencyCode, Customer, DeliveryMethod, OrderLine


class PlaceOrderRequest(BaseModel):
    """An order from a sales channel. Amounts are integers in the currency's minor units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    external_reference: str = Field(min_length=1, max_length=100, description="The channel's own order number")
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1, max_length=200)
    currency: CurrencyCode
    shipping_address: Address
    delivery_method: DeliveryMethod
    payment_token: str = Field(min_length=1, max_length=128, description="A payment token, never card data")


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[FieldError] = []


class CancelOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=500)
    requested_by: str = Field(default="customer", min_length=1, max_length=100)


class OperatorActionRequest(BaseModel):
    """retry: send the parked step's command again; skip: treat a failed compensation as done and
    continue; resolve: the order was settled outside the system, close it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["retry", "skip", "resolve"]
    operator: str = Field(min_length=1, max_length=100)
    note: str = Field(min_length=1, max_length=1000)
