"""What the services' report routes share: the period a report covers, JSON or CSV, and 422s naming the field.

Every report (order-service's sales, fulfilment-service's performance) takes the same period parameters:
- `from` and `to`: a date (`2026-12-01`) or a date-time (`2026-12-01T08:00:00+01:00`). A date is a whole
  day in `tz`: `from` starts at its midnight, `to` includes it (the period ends at the next midnight). A
  date-time is an instant (in `tz` when it has no offset); as `to` it is exclusive. Without `to` the
  period ends with today; without `from` it starts `DEFAULT_DAYS` before its end.
- `tz`: the IANA time zone days (and weeks, months) are counted in; `UTC` by default.
A report answers JSON unless asked for CSV, by `format=csv` or an `Accept` header that prefers `text/csv`
(`format` wins). Bad parameters are a 422 naming the field, like every other bad input.
"""

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from oms_events.values import PlainText

DEFAULT_DAYS = 30
MAX_DAYS = 400
"""The longest period one report covers: a report reads every order (or shipment) of its period."""

CSV_MEDIA_TYPE = "text/csv"

PeriodStart = Annotated[
    PlainText | None,
    Query(
        alias="from",
        max_length=40,
        description="Start: a date (that day's midnight in `tz`) or an ISO 8601 date-time (inclusive). "
        f"Default: {DEFAULT_DAYS} days before the end",
    ),
]
PeriodEnd = Annotated[
    PlainText | None,
    Query(
        alias="to",
        max_length=40,
        description="End: a date (included: up to the next midnight in `tz`) or an ISO 8601 date-time "
        "(exclusive). Default: the end of today",
    ),
]
TimeZoneName = Annotated[
    PlainText, Query(min_length=1, max_length=64, description="IANA time zone days are counted in, e.g. Europe/Berlin")
]
ReportFormat = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv for a CSV file; without it the Accept header decides (text/csv)"),
]

CSV_RESPONSE: dict[str, Any] = {
    "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}},
    "description": "The report as JSON, or as CSV (one row per bucket) with `format=csv` or `Accept: text/csv`",
}
"""The 200 response of a report route in the OpenAPI document: JSON (the response model) or CSV."""


def invalid_parameter(field: str, message: str) -> RequestValidationError:
    """A 422 naming the query parameter, in the body every validation error has (install_error_handlers)."""
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])


@dataclass(frozen=True)
class Period:
    start: datetime
    """Inclusive, time-zone aware."""
    end: datetime
    """Exclusive, time-zone aware."""
    zone: ZoneInfo

    @property
    def tz(self) -> str:
        return self.zone.key


def time_zone(name: str, field: str = "tz") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError / OSError: names that are not zone keys at all (absolute paths, "..", directories).
        raise invalid_parameter(field, f"unknown time zone {name[:64]!r} (an IANA name, e.g. Europe/Berlin)") from None


def _instant(field: str, value: str, zone: ZoneInfo) -> tuple[datetime, bool]:
    """The instant `value` names, and whether it was a date (a whole day)."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), zone), True
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise invalid_parameter(field, "must be a date (YYYY-MM-DD) or an ISO 8601 date-time") from None
    return (parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed), False


def report_period(start: str | None, end: str | None, tz: str, now: datetime | None = None) -> Period:
    """The period of `from`/`to`/`tz` (see the module's docstring); a 422 naming the field when it is bad."""
    zone = time_zone(tz)
    now = now or datetime.now(UTC)
    if end is None:
        until = datetime.combine(now.astimezone(zone).date() + timedelta(days=1), time(), zone)
        named_end = until
    else:
        named_end, whole_day = _instant("to", end, zone)
        # A date includes that day; "from > to" is judged on the values as given.
        until = datetime.combine(named_end.date() + timedelta(days=1), time(), zone) if whole_day else named_end
    since = _instant("from", start, zone)[0] if start is not None else until - timedelta(days=DEFAULT_DAYS)
    if since > named_end:
        raise invalid_parameter("from", "must not be after `to`")
    if until - since > timedelta(days=MAX_DAYS):
        raise invalid_parameter("to", f"the period may span {MAX_DAYS} days at most")
    return Period(start=since, end=until, zone=zone)


def _quality(media_range: str) -> tuple[str, float]:
    media, *params = (part.strip() for part in media_range.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return media.lower(), q


def wants_csv(format_: str | None, accept: str | None) -> bool:
    """`format` when given; otherwise whether the Accept header ranks text/csv above JSON."""
    if format_ is not None:
        return format_ == "csv"
    ranked = dict(_quality(r) for r in (accept or "").split(",") if r.strip())
    csv_q = ranked.get(CSV_MEDIA_TYPE, 0.0)
    json_q = max(ranked.get("application/json", 0.0), ranked.get("*/*", 0.0), ranked.get("application/*", 0.0))
    return csv_q > 0 and csv_q >= json_q


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header row, then one row per mapping (missing keys and None are empty cells)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()


def csv_response(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], filename: str) -> Response:
    return Response(
        content=csv_text(columns, rows),
        media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
