"""The next occurrence of a repeating follow-up (a FHIR Timing), after one was sent.

Supported: `event` (explicit instants), and `repeat` with `period`/`periodUnit` (s, min, h, d,
wk, mo, a) and `frequency` (times per period, evenly spaced), bounded by `repeat.count`
(occurrences in all) and `repeat.boundsPeriod.end`. Calendar units (mo, a) keep the day of
month where it exists. Pure.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.instants import parse_instant

_FIXED_UNITS = {"s": timedelta(seconds=1), "min": timedelta(minutes=1),
                "h": timedelta(hours=1), "d": timedelta(days=1), "wk": timedelta(weeks=1)}
_MONTHS = {"mo": 1, "a": 12}


def next_occurrence(timing: Mapping[str, Any], *, after: datetime,
                    delivered: int) -> datetime | None:
    """The occurrence following the one due at `after`, of which `delivered` have been sent
    in all; None when the series is over (count reached, past its bounds, or no rule)."""
    repeat = timing.get("repeat") or {}
    count = repeat.get("count")
    if isinstance(count, int) and delivered >= count:
        return None
    following = _after_events(timing, after) if not repeat.get("period") else _step(
        repeat, after)
    end = _bounds_end(repeat)
    if following is None or (end is not None and following > end):
        return None
    return following


def _after_events(timing: Mapping[str, Any], after: datetime) -> datetime | None:
    later = [instant for value in timing.get("event", ()) if isinstance(value, str)
             if (instant := _instant(value, day_end=False)) > after]
    return min(later, default=None)


def _step(repeat: Mapping[str, Any], after: datetime) -> datetime | None:
    period, unit = float(repeat["period"]), repeat.get("periodUnit")
    frequency = max(int(repeat.get("frequency") or 1), 1)
    if unit in _FIXED_UNITS:
        return after + _FIXED_UNITS[unit] * period / frequency
    if unit in _MONTHS and frequency == 1 and period.is_integer():
        return _add_months(after, int(period) * _MONTHS[unit])
    return None


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _bounds_end(repeat: Mapping[str, Any]) -> datetime | None:
    end = (repeat.get("boundsPeriod") or {}).get("end")
    return _instant(end, day_end=True) if isinstance(end, str) else None


def _instant(value: str, *, day_end: bool) -> datetime:
    """A dateTime; a bare date means its first (or, as a bound, its last) moment in UTC."""
    if "T" in value:
        return parse_instant(value)
    return parse_instant(f"{value}T23:59:59.999Z" if day_end else f"{value}T00:00:00Z")
