"""Fulfilment performance: what a shipment's events mean for the report, and the report's arithmetic. Pure.

Each shipment is one record (`ShipmentFacts`, folded from its events and their times). The report counts
the shipments created (handed to fulfilment) in its period, per bucket:
- `shipments`, `shipped`, `delivered`, `cancelled`;
- `placed_to_shipped` and `shipped_to_delivered`: p50 and p90 in seconds (linear interpolation between
  the closest ranks, like PostgreSQL's percentile_cont), over the shipments that have both times;
- `on_time_rate`: delivered on or before the promised date (the estimated delivery the customer was given
  when the parcel left), by the delivery's date in the warehouse's time zone, over the delivered ones;
  `late_shipments`: delivered after it; `overdue_shipments`: shipped, not delivered (nor returned to
  the sender) and the promised date is past;
- `short_picks`: shipments that went on with fewer units than ordered (`short_units` missing);
  `failed_shipments`: none of their units were found (FulfilmentFailed);
- `returns_rate`: units customers sent back (returns authorised) over units shipped.
"""

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from enum import StrEnum

from oms_events import Message
from oms_events.messages import (
    FulfilmentFailed,
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentDeliveryFailed,
    ShipmentPicked,
    ShipmentReturnedToSender,
    Shipped,
)

UNASSIGNED = "unassigned"
"""The carrier (or delivery method) bucket of shipments that have none (not shipped yet, or older events)."""


@dataclass(frozen=True)
class ShipmentFacts:
    """One shipment as the report sees it."""

    shipment_id: str
    order_id: str
    warehouse_id: str
    created_at: datetime
    units: int
    delivery_method: str | None = None
    carrier: str | None = None
    shipped_at: datetime | None = None
    promised_date: date | None = None
    shipped_units: int = 0
    short_units: int = 0
    failed: bool = False
    cancelled: bool = False
    delivered_at: datetime | None = None
    delivery_failures: int = 0
    returned_to_sender: bool = False


def fold(facts: ShipmentFacts | None, events: Iterable[tuple[datetime, Message]]) -> ShipmentFacts | None:
    """The facts after `(occurred_at, event)` pairs; None while no ShipmentCreated started them.

    A carrier update recorded as superseded (it arrived after a later status) changes nothing, like it
    changes nothing in the shipment."""
    for at, event in events:
        if isinstance(event, ShipmentCreated):
            facts = ShipmentFacts(
                shipment_id=str(event.shipment_id),
                order_id=str(event.order_id),
                warehouse_id=event.warehouse_id,
                created_at=at,
                units=sum(line.quantity for line in event.lines),
                delivery_method=event.delivery_method.value if event.delivery_method else None,
            )
            continue
        if facts is None:
            return None
        if isinstance(event, ShipmentPicked):
            facts = replace(facts, short_units=sum(line.quantity for line in event.short))
        elif isinstance(event, FulfilmentFailed):
            facts = replace(facts, failed=True)
        elif isinstance(event, Shipped):
            shipped_units = sum(line.quantity for line in event.lines) or facts.units - facts.short_units
            facts = replace(
                facts,
                carrier=event.carrier,
                shipped_at=at,
                promised_date=event.estimated_delivery,
                shipped_units=shipped_units,
            )
        elif isinstance(event, ShipmentCancelled):
            facts = replace(facts, cancelled=True)
        elif isinstance(event, ShipmentDelivered) and not event.superseded:
            facts = replace(facts, delivered_at=event.reported_at)
        elif isinstance(event, ShipmentDeliveryFailed) and not event.superseded:
            facts = replace(facts, delivery_failures=facts.delivery_failures + 1)
        elif isinstance(event, ShipmentReturnedToSender) and not event.superseded:
            facts = replace(facts, returned_to_sender=True)
    return facts


class GroupBy(StrEnum):
    DAY = "day"
    WAREHOUSE = "warehouse"
    CARRIER = "carrier"
    DELIVERY_METHOD = "delivery_method"


@dataclass(frozen=True)
class ShipmentRecord:
    """A shipment's facts with what the report joins to them: when its order was placed (None when no
    ShipOrder of the order said, nor OrderPlaced before ShipOrder carried it) and how many of its units
    came back."""

    facts: ShipmentFacts
    placed_at: datetime | None = None
    returned_units: int = 0


def percentile(values: Sequence[float], p: int) -> float | None:
    """The p-th percentile (1..99) by linear interpolation between closest ranks; None without values."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    # `inclusive` treats the data as the whole population: the same definition as percentile_cont.
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def on_time(facts: ShipmentFacts, zone: tzinfo) -> bool | None:
    """Delivered on or before the promised date (the delivery's date in `zone`); None when not delivered."""
    if facts.delivered_at is None or facts.promised_date is None:
        return None
    return facts.delivered_at.astimezone(zone).date() <= facts.promised_date


def overdue(facts: ShipmentFacts, zone: tzinfo, now: datetime) -> bool:
    """Left the warehouse, not delivered nor back with the sender, and the promised date is past (in `zone`)."""
    return (
        facts.shipped_at is not None
        and facts.delivered_at is None
        and not facts.returned_to_sender
        and facts.promised_date is not None
        and now.astimezone(zone).date() > facts.promised_date
    )


@dataclass
class Performance:
    shipments: int = 0
    shipped: int = 0
    delivered: int = 0
    cancelled: int = 0
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    short_picks: int = 0
    short_units: int = 0
    failed: int = 0
    shipped_units: int = 0
    returned_units: int = 0
    placed_to_shipped_s: list[float] = field(default_factory=list)
    shipped_to_delivered_s: list[float] = field(default_factory=list)

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.delivered if self.delivered else None

    @property
    def returns_rate(self) -> float | None:
        return self.returned_units / self.shipped_units if self.shipped_units else None

    def merge(self, other: "Performance") -> None:
        """Adds another bucket's figures to these (a total of buckets)."""
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, list):
                mine.extend(value)
            else:
                setattr(self, name, mine + value)

    def add(self, record: ShipmentRecord, warehouse_zone: tzinfo, now: datetime) -> None:
        facts = record.facts
        self.shipments += 1
        self.cancelled += facts.cancelled
        self.failed += facts.failed
        if facts.short_units and not facts.failed:
            self.short_picks += 1
            self.short_units += facts.short_units
        if facts.shipped_at is not None:
            self.shipped += 1
            self.shipped_units += facts.shipped_units
            self.returned_units += record.returned_units
            if record.placed_at is not None:
                self.placed_to_shipped_s.append((facts.shipped_at - record.placed_at).total_seconds())
        if facts.delivered_at is not None:
            self.delivered += 1
            if facts.shipped_at is not None:
                self.shipped_to_delivered_s.append((facts.delivered_at - facts.shipped_at).total_seconds())
        punctual = on_time(facts, warehouse_zone)
        self.on_time += punctual is True
        self.late += punctual is False
        self.overdue += overdue(facts, warehouse_zone, now)


def bucket_key(facts: ShipmentFacts, group_by: GroupBy, zone: tzinfo) -> str:
    """A day (ISO date of the shipment's creation in `zone`), a warehouse, a carrier or a delivery method."""
    if group_by is GroupBy.WAREHOUSE:
        return facts.warehouse_id
    if group_by is GroupBy.CARRIER:
        return facts.carrier or UNASSIGNED
    if group_by is GroupBy.DELIVERY_METHOD:
        return facts.delivery_method or UNASSIGNED
    return facts.created_at.astimezone(zone).date().isoformat()


def performance(
    records: Iterable[ShipmentRecord],
    group_by: GroupBy,
    *,
    zone: tzinfo,
    zone_of: Callable[[str], tzinfo],
    now: datetime,
) -> tuple[list[tuple[str, Performance]], Performance]:
    """Per bucket (sorted by key) and in total. `zone` counts the days; `zone_of(warehouse)` dates a
    delivery and today's date for the promise, where the warehouse promised it."""
    found: dict[str, Performance] = {}
    for record in records:
        key = bucket_key(record.facts, group_by, zone)
        found.setdefault(key, Performance()).add(record, zone_of(record.facts.warehouse_id), now)
    total = Performance()
    for bucket in found.values():
        total.merge(bucket)
    return sorted(found.items()), total
