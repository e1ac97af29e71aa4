"""Value objects shared by several messages, and the constrained types every edge (HTTP, intake topic) uses.

What PostgreSQL cannot store must be refused where it comes in, with the field named, not found out by the
database as a failed statement: `PlainText` for every free-text field (no NUL, no lone surrogate), the
integer bounds of the columns (`INT32_MAX`, `INT64_MAX`), and days and instants inside what a date
column and date arithmetic hold (`Day`, `Instant`).
"""

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Final
from uuid import UUID, uuid5

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# ---------------------------------------------------------------- what the database can store

INT32_MAX: Final = 2**31 - 1
"""The largest INTEGER (stock levels, quantities, day counts)."""
INT64_MAX: Final = 2**63 - 1
"""The largest BIGINT."""
MAX_AMOUNT_MINOR: Final = 2**53 - 1
"""The largest amount in minor units (and order total): the largest integer every JSON reader holds exactly
(RFC 8259, section 6), far inside the BIGINT columns amounts are kept in."""

TEXT_PATTERN: Final = r"^[^\u0000]*$"
"""What `PlainText` documents in JSON Schema (ECMA-262): no NUL. Lone surrogates are refused too, but a
pattern cannot say so without refusing every character outside the Basic Multilingual Plane."""

_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: str) -> str:
    # PostgreSQL's text and jsonb refuse U+0000; a lone surrogate has no UTF-8 encoding at all. The
    # message names the character, never the value (it may be a token or personal data).
    found = _NOT_STORABLE.search(value)
    if found is not None:
        char = found.group()
        what = "a NUL character (\\u0000)" if char == "\x00" else f"a lone surrogate (\\u{ord(char):04x})"
        raise PydanticCustomError("text_not_storable", "must not contain {what}", {"what": what})
    return value


class _Storable:
    """The `PlainText` annotation: the check after str's own, and the pattern in the JSON Schema."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", TEXT_PATTERN)
        return json_schema


PlainText = Annotated[str, _Storable()]
"""A text field as the edges accept it: any Unicode text PostgreSQL can store (no NUL, no lone surrogate).
Every free-text field of a request, query or path parameter is one; lengths are the field's own."""

FIRST_DAY: Final = date(1970, 1, 1)
LAST_DAY: Final = date(9999, 1, 1)
"""Days outside these are refused: date arithmetic near 0001-01-01 or 9999-12-31 overflows."""

Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
"""A day as the edges accept it (1970-01-01 to 9999-01-01)."""


def _instant_in_range(value: datetime) -> datetime:
    # The day as written: far enough from the ends of `datetime` that converting it to UTC cannot overflow.
    if not FIRST_DAY <= value.date() <= LAST_DAY:
        raise PydanticCustomError(
            "instant_out_of_range", "must be between {first} and {last}", {"first": FIRST_DAY, "last": LAST_DAY}
        )
    return value


Instant = Annotated[datetime, AfterValidator(_instant_in_range)]
"""An instant as the edges accept it (with or without its zone), on a day between `FIRST_DAY` and `LAST_DAY`."""
AwareInstant = Annotated[AwareDatetime, AfterValidator(_instant_in_range)]
"""An instant that must carry its zone, on a day between `FIRST_DAY` and `LAST_DAY`."""

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
WarehouseId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
"""A warehouse id as the edges accept it (the pattern `PUT /warehouses/{warehouse_id}` always required)."""
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
MinorUnits = Annotated[
    int, Field(ge=0, le=MAX_AMOUNT_MINOR, description="Amount in the currency's minor units (cents)")
]
Quantity = Annotated[int, Field(gt=0, le=10_000)]
MAX_STOCK_CHANGE: Final = 1_000_000
"""The most units one stock request (a receipt, an adjustment, a purchase order) may move: far inside an
INTEGER stock level, so that no single request can push one past 2^31-1."""


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
    customer_id: PlainText = Field(min_length=1, max_length=64)
    name: PlainText = Field(min_length=1, max_length=200)
    email: PlainText = Field(min_length=3, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{6,20}$")


class Address(ValueObject):
    name: PlainText = Field(min_length=1, max_length=200)
    line1: PlainText = Field(min_length=1, max_length=200)
    line2: PlainText | None = Field(default=None, max_length=200)
    city: PlainText = Field(min_length=1, max_length=100)
    postal_code: PlainText = Field(min_length=1, max_length=20)
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


class Parcel(ValueObject):
    """One packed parcel of a shipment: weight in grams, dimensions in millimetres."""

    weight_grams: int = Field(gt=0, le=1_000_000)
    length_mm: int = Field(gt=0, le=10_000)
    width_mm: int = Field(gt=0, le=10_000)
    height_mm: int = Field(gt=0, le=10_000)


class ShipmentTracking(ValueObject):
    shipment_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    estimated_delivery: date


# ---------------------------------------------------------------- card data

# Digits with single spaces or dashes between them, as people write card numbers.
_DIGIT_GROUPS = re.compile(r"\d(?:[ -]?\d)*")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True when `text` holds what looks like a primary account number (PAN): 13 to 19 digits, spaces
    or dashes allowed between them, that pass the Luhn check.

    The OMS takes tokens from the card vault only; a card number must never be accepted, stored or
    logged. Luhn keeps opaque tokens that merely hold long digit runs from being refused.
    """
    for match in _DIGIT_GROUPS.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return True
    return False


CARD_NUMBER_MESSAGE: Final = "looks like a card number; send a payment token from the card vault, never card data"


def _not_a_card_number(token: str) -> str:
    # The message never repeats the value: it would put the card number into errors and logs.
    if looks_like_card_number(token):
        raise ValueError(CARD_NUMBER_MESSAGE)
    return token


PaymentToken = Annotated[
    PlainText,
    Field(min_length=1, max_length=128, description="A payment token from the card vault, never card data"),
    AfterValidator(_not_a_card_number),
]
"""A payment token as the edges accept it: anything that looks like a card number is refused."""


# ---------------------------------------------------------------- order submissions (HTTP and intake topic)

MAX_ORDER_LINES: Final = 200

ORDER_ID_NAMESPACE: Final = UUID("dcaf0e4d-0ba8-4773-a935-3dd597191203")
"""The uuid5 namespace of order ids derived from a channel and its external reference. Never changes."""


def order_id_for(channel: "Channel | str", external_reference: str) -> UUID:
    """The order id of a submission on the intake topic: uuid5 of `"{channel}:{external_reference}"`.

    A submitter computes it itself (it is the message's `order_id` and Kafka key); the same channel
    and reference always give the same id.
    """
    return uuid5(ORDER_ID_NAMESPACE, f"{Channel(channel).value}:{external_reference}")


class OrderSubmission(BaseModel):
    """An order as a sales channel submits it, over HTTP (`POST /orders`) or on the intake topic
    (`SubmitOrder`). The one validation of both paths. Amounts are integers in the currency's minor units."""

    model_config = ConfigDict(frozen=True)

    channel: Channel
    external_reference: PlainText = Field(min_length=1, max_length=100, description="The channel's own order number")
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    currency: CurrencyCode
    shipping_address: Address
    delivery_method: DeliveryMethod
    payment_token: PaymentToken
    billing_address: Address | None = Field(
        default=None, description="Where the card is billed, if the channel knows it (used by the payment risk check)"
    )
    allow_backorder: bool = Field(
        default=False,
        description="When some stock is short, wait for it (the order is `backordered`) instead of rejecting",
    )

    @field_validator("lines")
    @classmethod
    def _total_fits(cls, lines: list[OrderLine]) -> list[OrderLine]:
        # An order's total is an amount too (kept in BIGINT columns, read by JSON clients).
        if sum(line.quantity * line.unit_price_minor for line in lines) > MAX_AMOUNT_MINOR:
            raise ValueError(
                f"the order's total (quantity x unit_price_minor, summed) must not exceed {MAX_AMOUNT_MINOR}"
            )
        return lines

    @property
    def total_minor(self) -> int:
        return sum(line.quantity * line.unit_price_minor for line in self.lines)


class FieldProblem(ValueObject):
    """One bad field of a submission: `field` is its dotted path, e.g. `lines.0.quantity`."""

    field: str
    message: str


def field_problems(error: ValidationError) -> list[FieldProblem]:
    """Every bad field of a validation error, named by its dotted path (`(root)` for the whole body)."""
    return [
        FieldProblem(field=".".join(str(p) for p in item["loc"]) or "(root)", message=item["msg"])
        for item in error.errors()
    ]
