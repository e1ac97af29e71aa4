"""Carriers per delivery method, their tracking number formats and tracking pages. Pure: no I/O.

Tracking numbers are drawn from randomness the caller supplies (at least 64 random bits), never
from a counter, so that they are unique across replicas and restarts. The database holds a unique
constraint as the last line of defence against a collision.
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

    def tracking_url(self, tracking_number: str) -> str:
        return self.url_template.format(tracking_number=quote(tracking_number, safe=""))


DHL = Carrier(
    name="DHL",
    prefix="JD",
    length=18,
    alphabet=string.digits,
    url_template="https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?submit=1&tracking-id={tracking_number}",
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

CARRIERS: Mapping[DeliveryMethod, Carrier] = {
    DeliveryMethod.STANDARD: DHL,
    DeliveryMethod.EXPEDITED: UPS,
    DeliveryMethod.NEXT_DAY: DPD,
}


def carrier_for(method: DeliveryMethod) -> Carrier:
    return CARRIERS[method]
