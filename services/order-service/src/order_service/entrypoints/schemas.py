"""The HTTP API's request and response bodies."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from oms_events.values import OrderSubmission, PlainText
from oms_runtime.http_api import ErrorBody as ErrorBody
from oms_runtime.http_api import FieldError as FieldError


class PlaceOrderRequest(OrderSubmission):
    """An order from a sales channel. Amounts are integers in the currency's minor units.

    The fields and their rules are `OrderSubmission`'s, shared with `SubmitOrder` on the intake topic,
    so both paths accept and refuse the same orders; HTTP also refuses unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CancelOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: PlainText = Field(min_length=1, max_length=500)
    requested_by: PlainText = Field(default="customer", min_length=1, max_length=100)


class HoldRequest(BaseModel):
    """Put an order on hold before its payment (ops)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: PlainText = Field(min_length=1, max_length=500)
    held_by: PlainText = Field(min_length=1, max_length=100)


class ReleaseHoldRequest(BaseModel):
    """Release an order's hold: its payment is captured and the saga goes on (ops)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    released_by: PlainText = Field(min_length=1, max_length=100)
    note: PlainText = Field(min_length=1, max_length=1000)


class OperatorActionRequest(BaseModel):
    """retry: send the parked step's command again; skip: treat a failed compensation as done and
    continue; resolve: the order was settled outside the system, close it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["retry", "skip", "resolve"]
    operator: PlainText = Field(min_length=1, max_length=100)
    note: PlainText = Field(min_length=1, max_length=1000)
    refund: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Act on this failed partial refund (as in the order's `refunds`) instead of the order's parked "
        "step. Without it, an order that is not in needs_attention acts on its only failed refund.",
    )
