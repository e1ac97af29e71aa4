"""Carriers, their tracking number formats and tracking pages, and the service levels. Pure: no I/O.

Tracking numbers are drawn from randomness the caller supplies (at least 64 random bits), never
from a counter, so that they are unique across replicas and restarts. The database holds a unique
constraint as the last line of defence against a collision.

Formats, as each carrier prints them on its labels:
- DHL (Express waybill): 10 digits;
- UPS: `1Z` followed by 16 characters of `0-9A-Z`;
- DPD: 14 digits.
"""

import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from oms_events.values import DeliveryMethod


@dataclass(frozen=True)
class Carrier:
    name: str
    prefix: str
    length: int
    """Characters after the prefix."""
    alphabet: str
    url_template: str
    """With a `{tracking_number}` placeholder."""

    def tracking_number(self, entropy: int) -> str:
        """A tracking number in this carrier's format, made from the random integer `entropy`."""
        if entropy < 0:
            raise ValueError("entropy must not be negative")
        base = len(self.alphabet)
        chars = []
        for _ in range(self.length):
            entropy, digit = divmod(entropy, base)
            chars.append(self.alphabet[digit])
        return self.prefix + "".join(reversed(chars))

    def is_tracking_number(self, candidate: str) -> bool:
        """Whether `candidate` has this carrier's format."""
        body = candidate.removeprefix(self.prefix) if candidate.startswith(self.prefix) else None
        return body is not None and len(body) == self.length and all(c in self.alphabet for c in body)

    def tracking_url(self, tracking_number: str) -> str:
        return self.url_template.format(tracking_number=quote(tracking_number, safe=""))


DHL = Carrier(
    name="DHL",
    prefix="",
    length=10,
    alphabet=string.digits,
    url_template="https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={tracking_number}",
)
UPS = Carrier(
    name="UPS",
    prefix="1Z",
    length=16,
    alphabet=string.digits + string.ascii_uppercase,
    url_template="https://www.ups.com/track?tracknum={tracking_number}",
)
DPD = Carrier(
    name="DPD",
    prefix="",
    length=14,
    alphabet=string.digits,
    url_template="https://tracking.dpd.de/status/en_US/parcel/{tracking_number}",
)

KNOWN_CARRIERS: Mapping[str, Carrier] = {c.name: c for c in (DHL, UPS, DPD)}


@dataclass(frozen=True)
class ServiceLevel:
    """How one delivery method ships: which carrier, and how many business days it takes."""

    method: DeliveryMethod
    carrier: Carrier
    transit_business_days: int


DEFAULT_SERVICE_LEVELS: Mapping[DeliveryMethod, ServiceLevel] = {
    DeliveryMethod.STANDARD: ServiceLevel(DeliveryMethod.STANDARD, DHL, 3),
    DeliveryMethod.EXPEDITED: ServiceLevel(DeliveryMethod.EXPEDITED, UPS, 2),
    DeliveryMethod.NEXT_DAY: ServiceLevel(DeliveryMethod.NEXT_DAY, DPD, 1),
}


def service_levels(config: Mapping[str, Mapping[str, object]]) -> dict[DeliveryMethod, ServiceLevel]:
    """Service levels from the SERVICE_LEVELS setting, e.g. `{"standard": {"carrier": "DPD",
    "transit_business_days": 2}}`; methods not named keep their defaults. Raises ValueError on an
    unknown method or carrier, or a transit time that is not a whole number of days from 0 to 30."""
    levels = dict(DEFAULT_SERVICE_LEVELS)
    for method_name, entry in config.items():
        try:
            method = DeliveryMethod(method_name)
        except ValueError:
            raise ValueError(f"unknown delivery method {method_name!r} in service levels") from None
        default = DEFAULT_SERVICE_LEVELS[method]
        carrier_name = entry.get("carrier", default.carrier.name)
        if not isinstance(carrier_name, str) or carrier_name not in KNOWN_CARRIERS:
            raise ValueError(f"unknown carrier {carrier_name!r} for {method_name}; known: {sorted(KNOWN_CARRIERS)}")
        days = entry.get("transit_business_days", default.transit_business_days)
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 30:
            raise ValueError(f"transit_business_days of {method_name} must be a whole number from 0 to 30")
        levels[method] = ServiceLevel(method, KNOWN_CARRIERS[carrier_name], days)
    return levels


def carrier_for(method: DeliveryMethod) -> Carrier:
    return DEFAULT_SERVICE_LEVELS[method].carrier
