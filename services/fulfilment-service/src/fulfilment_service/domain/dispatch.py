"""When a parcel leaves the warehouse and when it arrives. Pure: no I/O; `now` is always a parameter.

A warehouse dispatches on business days (Monday to Friday, minus its holidays) until its daily
cut-off, in its own time zone. An order that comes in at or after the cut-off, or on a day off,
leaves on the next business day. Carriers deliver a number of business days after dispatch that
depends on the delivery method.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from oms_events.values import DeliveryMethod

DEFAULT_CUTOFF = time(15, 0)

TRANSIT_BUSINESS_DAYS: Mapping[DeliveryMethod, int] = {
    DeliveryMethod.STANDARD: 3,
    DeliveryMethod.EXPEDITED: 2,
    DeliveryMethod.NEXT_DAY: 1,
}


@dataclass(frozen=True)
class DispatchCalendar:
    """One warehouse's working days and daily cut-off, in its own time zone."""

    timezone: tzinfo
    cutoff: time = DEFAULT_CUTOFF
    holidays: frozenset[date] = frozenset()

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`."""
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def add_business_days(self, day: date, count: int) -> date:
        if count < 0:
            raise ValueError("count must not be negative")
        for _ in range(count):
            day = self.next_business_day(day)
        return day

    def dispatch_day(self, now: datetime) -> date:
        """The day an order that comes in at `now` leaves the warehouse."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        local = now.astimezone(self.timezone)
        today = local.date()
        if self.is_business_day(today) and local.time() < self.cutoff:
            return today
        return self.next_business_day(today)

    def estimated_delivery(
        self, method: DeliveryMethod, now: datetime, transit_business_days: int | None = None
    ) -> date:
        """Dispatch day plus the transit time: the method's default unless the service level says otherwise."""
        days = TRANSIT_BUSINESS_DAYS[method] if transit_business_days is None else transit_business_days
        return self.add_business_days(self.dispatch_day(now), days)


@dataclass(frozen=True)
class WarehouseCalendars:
    """The dispatch calendar of each warehouse; warehouses not listed use the default."""

    default: DispatchCalendar
    by_warehouse: Mapping[str, DispatchCalendar] = field(default_factory=dict)

    def of(self, warehouse_id: str) -> DispatchCalendar:
        return self.by_warehouse.get(warehouse_id, self.default)
