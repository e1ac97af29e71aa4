"""A customer's choices: which messages by which channel, in which language, and when SMS may arrive.

Pure: the time zone arithmetic takes `now` as an argument. Quiet hours are local wall-clock times in
the customer's time zone (so they follow daylight saving time), may span midnight (22:00-07:00), and
apply to SMS only: an email waits in the inbox, a text message buzzes the phone.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notification_service.domain.notifications import (
    CHANNEL_EMAIL,
    CHANNEL_SMS,
    SMS_BY_DEFAULT,
    NotificationKind,
)

DEFAULT_TIME_ZONE: Final = "UTC"


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def default_choice(kind: NotificationKind, channel: str) -> bool:
    """Without a choice of the customer: every message by email, the urgent ones also by SMS."""
    if channel == CHANNEL_EMAIL:
        return True
    return channel == CHANNEL_SMS and kind in SMS_BY_DEFAULT


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours must not start and end at the same time")

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight

    def end_after(self, now: datetime, time_zone: str) -> datetime | None:
        """When the quiet hours around `now` end (UTC), or None when `now` is not in them."""
        zone = ZoneInfo(time_zone)
        local = now.astimezone(zone)
        wall = local.time().replace(tzinfo=None)
        if not self.contains(wall):
            return None
        end_day = local.date()
        if self.start > self.end and wall >= self.start:
            end_day += timedelta(days=1)
        # A wall time that does not exist that day (DST gap) comes out shifted by the gap: still after.
        return datetime.combine(end_day, self.end, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Preferences:
    customer_id: str
    locale: str | None = None
    time_zone: str = DEFAULT_TIME_ZONE
    quiet_hours: QuietHours | None = None
    choices: Mapping[tuple[NotificationKind, str], bool] = field(default_factory=dict)
    """Explicit opt-ins (True) and opt-outs (False) per (kind, channel); the rest are defaults."""

    def wants(self, kind: NotificationKind, channel: str) -> bool:
        return self.choices.get((kind, channel), default_choice(kind, channel))

    def opted_out(self, kind: NotificationKind, channel: str) -> bool:
        """An explicit opt-out (not just a channel that is off by default)."""
        return self.choices.get((kind, channel)) is False

    def sms_held_until(self, now: datetime) -> datetime | None:
        """The end of the customer's quiet hours when `now` falls in them, else None."""
        if self.quiet_hours is None:
            return None
        return self.quiet_hours.end_after(now, self.time_zone)

    def channel_matrix(self) -> dict[str, dict[str, bool]]:
        return {
            kind.value: {ch: self.wants(kind, ch) for ch in (CHANNEL_EMAIL, CHANNEL_SMS)} for kind in NotificationKind
        }
