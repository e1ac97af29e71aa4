"""Dispatch days and estimated delivery: cut-off, weekends, holidays, time zones. Pure."""

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from fulfilment_service.domain.dispatch import DispatchCalendar, WarehouseCalendars
from oms_events.values import DeliveryMethod

BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")
CAL = DispatchCalendar(BERLIN)

# 2026-03-02 is a Monday; 2026-03-06 a Friday.
MON, TUE, WED, THU, FRI, SAT, SUN = (date(2026, 3, 2) + timedelta(days=i) for i in range(7))
NEXT_MON, NEXT_TUE, NEXT_WED, NEXT_THU = (date(2026, 3, 9) + timedelta(days=i) for i in range(4))


def berlin(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=BERLIN)


def test_before_cut_off_on_a_business_day_ships_today() -> None:
    assert CAL.dispatch_day(berlin(TUE, 9)) == TUE
    assert CAL.dispatch_day(berlin(TUE, 14, 59)) == TUE


def test_at_or_after_cut_off_ships_the_next_business_day() -> None:
    assert CAL.dispatch_day(berlin(TUE, 15)) == WED
    assert CAL.dispatch_day(berlin(TUE, 23, 59)) == WED


def test_friday_after_cut_off_ships_on_monday() -> None:
    assert CAL.dispatch_day(berlin(FRI, 16)) == NEXT_MON


@pytest.mark.parametrize("day", [SAT, SUN])
@pytest.mark.parametrize("hour", [0, 10, 20])
def test_weekend_orders_ship_on_monday(day: date, hour: int) -> None:
    assert CAL.dispatch_day(berlin(day, hour)) == NEXT_MON


@pytest.mark.parametrize(
    ("method", "expected"),
    [(DeliveryMethod.STANDARD, FRI), (DeliveryMethod.EXPEDITED, THU), (DeliveryMethod.NEXT_DAY, WED)],
)
def test_transit_times_before_cut_off(method: DeliveryMethod, expected: date) -> None:
    assert CAL.estimated_delivery(method, berlin(TUE, 10)) == expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [(DeliveryMethod.STANDARD, NEXT_MON), (DeliveryMethod.EXPEDITED, FRI), (DeliveryMethod.NEXT_DAY, THU)],
)
def test_transit_times_after_cut_off(method: DeliveryMethod, expected: date) -> None:
    assert CAL.estimated_delivery(method, berlin(TUE, 15, 30)) == expected


def test_transit_skips_the_weekend() -> None:
    # Thursday before cut-off: standard = Fri, Mon, Tue.
    assert CAL.estimated_delivery(DeliveryMethod.STANDARD, berlin(THU, 11)) == NEXT_TUE
    # Friday before cut-off, next day: Monday.
    assert CAL.estimated_delivery(DeliveryMethod.NEXT_DAY, berlin(FRI, 14)) == NEXT_MON
    # Friday after cut-off, next day: ships Monday, arrives Tuesday.
    assert CAL.estimated_delivery(DeliveryMethod.NEXT_DAY, berlin(FRI, 15)) == NEXT_TUE


@pytest.mark.parametrize(
    ("method", "expected"),
    [(DeliveryMethod.STANDARD, NEXT_THU), (DeliveryMethod.EXPEDITED, NEXT_WED), (DeliveryMethod.NEXT_DAY, NEXT_TUE)],
)
def test_weekend_orders(method: DeliveryMethod, expected: date) -> None:
    assert CAL.estimated_delivery(method, berlin(SAT, 9)) == expected


def test_the_cut_off_is_in_the_warehouse_time_zone() -> None:
    # 14:30 UTC in winter is 15:30 in Berlin (past cut-off) and 14:30 in London (before it).
    now = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)  # Tuesday
    assert DispatchCalendar(BERLIN).dispatch_day(now) == WED
    assert DispatchCalendar(LONDON).dispatch_day(now) == TUE


def test_a_late_utc_evening_is_already_tomorrow_in_berlin() -> None:
    # Friday 23:30 UTC is Saturday 00:30 in Berlin: a weekend order.
    now = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)
    assert CAL.dispatch_day(now) == NEXT_MON


def test_daylight_saving_time_is_respected() -> None:
    # 2026-03-31 (Tue) is after the switch: Berlin is UTC+2, so 13:30 UTC is 15:30 local.
    now = datetime(2026, 3, 31, 13, 30, tzinfo=UTC)
    assert CAL.dispatch_day(now) == date(2026, 4, 1)
    assert CAL.dispatch_day(now.astimezone(timezone(timedelta(hours=-5)))) == date(2026, 4, 1)


def test_holidays_are_not_business_days() -> None:
    cal = DispatchCalendar(BERLIN, holidays=frozenset({WED, THU}))
    assert cal.dispatch_day(berlin(TUE, 16)) == FRI
    assert cal.estimated_delivery(DeliveryMethod.NEXT_DAY, berlin(TUE, 10)) == FRI
    assert cal.dispatch_day(berlin(WED, 10)) == FRI


def test_a_custom_cut_off() -> None:
    cal = DispatchCalendar(BERLIN, cutoff=time(12, 0))
    assert cal.dispatch_day(berlin(TUE, 12)) == WED
    assert cal.dispatch_day(berlin(TUE, 11, 59)) == TUE


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.dispatch_day(datetime(2026, 3, 3, 10, 0))


def test_business_day_arithmetic() -> None:
    assert CAL.next_business_day(FRI) == NEXT_MON
    assert CAL.add_business_days(FRI, 0) == FRI
    assert CAL.add_business_days(WED, 5) == NEXT_WED
    with pytest.raises(ValueError, match="negative"):
        CAL.add_business_days(MON, -1)


def test_warehouses_without_a_calendar_use_the_default() -> None:
    london = DispatchCalendar(LONDON)
    calendars = WarehouseCalendars(default=DispatchCalendar(UTC), by_warehouse={"WH-LON": london})
    assert calendars.of("WH-LON") is london
    assert calendars.of("WH-XYZ").timezone is UTC


@pytest.mark.parametrize(
    ("now", "days", "expected"),
    [
        # A configured service level of 4 business days, ordered Thursday before the cut-off: over the weekend.
        (berlin(THU, 9), 4, NEXT_WED),
        # Thursday after the cut-off leaves Friday: 4 business days later is the Thursday after.
        (berlin(THU, 15, 1), 4, NEXT_THU),
        # Sunday evening leaves Monday.
        (berlin(SUN, 20), 2, NEXT_WED),
        # Same-day service (0 days): the dispatch day itself; after Friday's cut-off that is Monday.
        (berlin(FRI, 16), 0, NEXT_MON),
    ],
)
def test_configured_transit_times_across_weekends_and_cut_off(now: datetime, days: int, expected: date) -> None:
    assert CAL.estimated_delivery(DeliveryMethod.STANDARD, now, transit_business_days=days) == expected
