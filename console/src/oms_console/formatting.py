"""Money, times and durations in the reader's locale and time zone (Babel), for the templates.

The locale comes from the browser's Accept-Language, the time zone from the browser at sign-in (kept in
the session). Amounts arrive in minor units and are shown with their currency's own number of digits.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.core import negotiate_locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision

DEFAULT_LOCALE = "en_GB"
NOTHING = "\N{EN DASH}"
"""Shown where a figure is missing: a dash, never a misleading 0."""
SUPPORTED_LOCALES = ("en_GB", "en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "sv_SE", "da_DK")


def locale_from_header(accept_language: str | None) -> str:
    """The best supported locale for an Accept-Language header (`de-DE,de;q=0.9,en;q=0.8` -> de_DE)."""
    wanted = []
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if tag and tag != "*":
            wanted.append(tag)
    languages = {s.split("_")[0]: s for s in SUPPORTED_LOCALES}
    found = negotiate_locale(wanted, SUPPORTED_LOCALES) or next(
        (languages[w.split("_")[0].lower()] for w in wanted if w.split("_")[0].lower() in languages), None
    )
    return found or DEFAULT_LOCALE


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Formatter:
    locale: str
    tz: str

    @property
    def _locale(self) -> Locale:
        try:
            return Locale.parse(self.locale)
        except (UnknownLocaleError, ValueError):
            return Locale.parse(DEFAULT_LOCALE)

    def money(self, minor: int | None, currency: str | None) -> str:
        if minor is None:
            return NOTHING
        if not currency:
            return format_decimal(minor, locale=self._locale)
        digits = get_currency_precision(currency)
        return format_currency(Decimal(minor).scaleb(-digits), currency, locale=self._locale)

    def number(self, value: float | int | None) -> str:
        return NOTHING if value is None else format_decimal(value, locale=self._locale)

    def percent(self, value: float | None) -> str:
        return NOTHING if value is None else format_percent(value, format="#,##0.0%", locale=self._locale)

    def when(self, value: str | datetime | None) -> str:
        """Date and time in the reader's zone, to the second (a timeline needs the order of steps)."""
        parsed = _parse(value)
        if parsed is None:
            return NOTHING
        return format_datetime(parsed, "medium", tzinfo=zone(self.tz), locale=self._locale)

    def day(self, value: str | date | None) -> str:
        if value is None or value == "":
            return NOTHING
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value[:10])
            except ValueError:
                return str(value)
        return format_date(value, "medium", locale=self._locale)

    def iso(self, value: str | datetime | None) -> str:
        parsed = _parse(value)
        return parsed.isoformat() if parsed else ""

    @staticmethod
    def duration(seconds: float | None) -> str:
        """3725 -> `1 h 2 min`; short and the same in every locale (the unit symbols are international)."""
        if seconds is None:
            return NOTHING
        seconds = round(seconds)
        if seconds < 60:
            return f"{seconds} s"
        minutes, _ = divmod(seconds, 60)
        if minutes < 60:
            return f"{minutes} min"
        hours, minutes = divmod(minutes, 60)
        if hours < 48:
            return f"{hours} h {minutes} min" if minutes else f"{hours} h"
        days, hours = divmod(hours, 24)
        return f"{days} d {hours} h" if hours else f"{days} d"
