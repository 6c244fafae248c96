"""FHIR date/dateTime/instant values as half-open epoch-millisecond ranges, by precision.

`2024` covers the whole year, `2024-03-10` the whole day, `2024-03-10T09:30` its minute,
`...T09:30:15` its second and `...T09:30:15.250Z` its millisecond. A value without a time
zone is taken as UTC (the server stores instants in UTC; a date has no zone in FHIR).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.search.model import DATE_MAX, DATE_MIN

MS_PER_SECOND = 1_000
MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DATE_TIME = re.compile(
    r"(?P<year>\d{4})"
    r"(?:-(?P<month>\d{2})"
    r"(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?"
    r")?)?)?"
)


def _days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the given civil date (proleptic Gregorian)."""
    return date(year, month, day).toordinal() - _EPOCH_ORDINAL


def _zone_offset_ms(zone: str | None) -> int:
    """Milliseconds east of UTC; no zone means UTC."""
    if zone is None or zone == "Z":
        return 0
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError(f"time zone offset out of range: {zone}")
    return sign * (hours * MS_PER_HOUR + minutes * MS_PER_MINUTE)


def _date_only_range(year: int, month: int | None, day: int | None) -> tuple[int, int]:
    """Whole year, month or day as a UTC range."""
    if month is None:
        low = _days_since_epoch(year, 1, 1)
        return low * MS_PER_DAY, (low + (366 if calendar.isleap(year) else 365)) * MS_PER_DAY
    if day is None:
        low = _days_since_epoch(year, month, 1)
        return low * MS_PER_DAY, (low + calendar.monthrange(year, month)[1]) * MS_PER_DAY
    low = _days_since_epoch(year, month, day)
    return low * MS_PER_DAY, (low + 1) * MS_PER_DAY


def _time_range(parts: Mapping[str, str | None], year: int, month: int, day: int) -> tuple[int, int]:
    """A dateTime with a time: its minute, second or millisecond, shifted to UTC."""
    hour, minute = int(parts["hour"] or 0), int(parts["minute"] or 0)
    second = int(parts["second"]) if parts["second"] is not None else None
    if hour > 23 or minute > 59 or (second is not None and second > 59):
        raise ValueError("time out of range")
    fraction = parts["fraction"]
    millis = int((fraction + "00")[:3]) if fraction else 0
    low = (
        _days_since_epoch(year, month, day) * MS_PER_DAY
        + hour * MS_PER_HOUR
        + minute * MS_PER_MINUTE
        + (second or 0) * MS_PER_SECOND
        + millis
        - _zone_offset_ms(parts["zone"])
    )
    if fraction:
        width = 1
    elif second is not None:
        width = MS_PER_SECOND
    else:
        width = MS_PER_MINUTE
    return low, low + width


def parse_date_range(value: str) -> tuple[int, int]:
    """`[low, high)` in epoch ms for a FHIR date, dateTime or instant; InvalidRequest if malformed."""
    match = _DATE_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidRequest(f"Invalid date/dateTime value: {value!r}")
    parts = match.groupdict()
    try:
        year = int(parts["year"])
        month = int(parts["month"]) if parts["month"] else None
        day = int(parts["day"]) if parts["day"] else None
        if year < 1 or (month is not None and not 1 <= month <= 12):
            raise ValueError("date out of range")
        if parts["hour"] is None:
            return _date_only_range(year, month, day)
        assert month is not None and day is not None  # the regex nests time inside day
        return _time_range(parts, year, month, day)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid date/dateTime value: {value!r} ({exc})") from exc


def period_range(period: Mapping[str, Any]) -> tuple[int, int] | None:
    """`[start.low, end.high)` of a FHIR Period; a missing end is open; None if both are missing."""
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return None
    low = parse_date_range(start)[0] if start is not None else DATE_MIN
    high = parse_date_range(end)[1] if end is not None else DATE_MAX
    return low, high


def epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive means UTC), e.g. the `now` passed in."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return delta.days * MS_PER_DAY + delta.seconds * MS_PER_SECOND + delta.microseconds // 1000


def format_epoch_ms(value: int) -> str:
    """The instant string (`2024-03-10T09:30:00.000Z`) of epoch ms in years 1-9999, for diagnostics."""
    m = _EPOCH + timedelta(milliseconds=value)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
            f".{m.microsecond // 1000:03d}Z")
