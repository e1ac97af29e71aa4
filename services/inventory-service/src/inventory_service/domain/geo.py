"""Locating a shipping address roughly enough to rank warehouses by distance. Pure: no I/O, no geocoder.

An address is located by its country and postcode, never by its street:
- Germany: the postcode's first digit is its postal zone (Leitzone 0-9); each zone has a reference
  point (its main city).
- United Kingdom: the postcode area (its leading letters, e.g. `M`, `EH`, `SW`) for the largest areas;
  any other area gets the country's centre.
- Every other country in `COUNTRY_CENTRES`: the country's approximate population centre.
- An unknown country cannot be located: the sourcing rule then falls back to the warehouse with the most
  stock.
Distances are great-circle distances (haversine) in kilometres. This is good enough to tell Berlin from
London; it is no routing engine.
"""

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


COUNTRY_CENTRES: dict[str, Location] = {
    "AT": Location(47.8, 14.5),
    "BE": Location(50.8, 4.4),
    "CH": Location(47.1, 8.2),
    "CZ": Location(49.9, 15.3),
    "DE": Location(51.0, 10.3),
    "DK": Location(55.9, 10.6),
    "ES": Location(40.4, -3.7),
    "FI": Location(61.9, 25.7),
    "FR": Location(47.0, 2.4),
    "GB": Location(52.6, -1.5),
    "IE": Location(53.3, -7.6),
    "IT": Location(42.8, 12.6),
    "LU": Location(49.8, 6.1),
    "NL": Location(52.2, 5.3),
    "NO": Location(60.5, 9.5),
    "PL": Location(52.0, 19.4),
    "PT": Location(39.6, -8.0),
    "SE": Location(59.3, 16.0),
    "US": Location(39.8, -98.6),
    "CA": Location(45.4, -75.7),
}

# Leitzone (first postcode digit) -> its main city.
_DE_ZONES: dict[str, Location] = {
    "0": Location(51.05, 13.74),  # Dresden, Leipzig
    "1": Location(52.52, 13.40),  # Berlin
    "2": Location(53.55, 9.99),  # Hamburg
    "3": Location(52.37, 9.73),  # Hanover
    "4": Location(51.23, 6.78),  # Düsseldorf, Ruhr
    "5": Location(50.94, 6.96),  # Cologne
    "6": Location(50.11, 8.68),  # Frankfurt
    "7": Location(48.78, 9.18),  # Stuttgart
    "8": Location(48.14, 11.58),  # Munich
    "9": Location(49.45, 11.08),  # Nuremberg
}

_GB_AREAS: dict[str, Location] = {
    **dict.fromkeys(("E", "EC", "N", "NW", "SE", "SW", "W", "WC"), Location(51.51, -0.13)),  # London
    "B": Location(52.49, -1.89),  # Birmingham
    "M": Location(53.48, -2.24),  # Manchester
    "L": Location(53.41, -2.98),  # Liverpool
    "LS": Location(53.80, -1.55),  # Leeds
    "BS": Location(51.45, -2.59),  # Bristol
    "CF": Location(51.48, -3.18),  # Cardiff
    "G": Location(55.86, -4.25),  # Glasgow
    "EH": Location(55.95, -3.19),  # Edinburgh
    "NE": Location(54.98, -1.61),  # Newcastle
    "BT": Location(54.60, -5.93),  # Belfast
}

_GB_AREA = re.compile(r"^([A-Z]{1,2})\d")


def locate(country: str, postal_code: str) -> Location | None:
    """A reference point for an address, from its country and postcode; None when the country is unknown."""
    country = country.upper()
    code = postal_code.strip().upper()
    if country == "DE" and code[:1] in _DE_ZONES:
        return _DE_ZONES[code[:1]]
    if country == "GB":
        match = _GB_AREA.match(code)
        if match and match.group(1) in _GB_AREAS:
            return _GB_AREAS[match.group(1)]
    return COUNTRY_CENTRES.get(country)


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine, mean Earth radius 6371 km)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))
