"""Reading availability rules out of FHIR JSON: our Schedule extension and the R4 fallbacks.

Errors are `ValidationFailed` with a FHIRPath `expression` naming the offending extension or
element, so a clinic admin can find the typo. Use the wrappers in `availability`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_server.fhir.errors import ValidationFailed
from fhir_server.scheduling.availability import (
    ALL_DAYS,
    AVAILABILITY_URL,
    R4_TIMEZONE_URL,
    AvailabilityRules,
    Coding,
    EmergencyWindow,
    NotAvailable,
    WeeklyTime,
)

_DAYS = {name: index for index, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat",
                                                    "sun"))}
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])(\.[0-9]+)?")
_DATE = re.compile(r"([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?")
_UCUM = "http://unitsofmeasure.org"
_UNIT_MINUTES = {"min": 1, "h": 60, "d": 1440, "wk": 10080}
_MANY = math.inf
_MIDNIGHT = time(0)

# For each complex extension: sub-extension url -> (value[x] type or None if complex, min, max).
Spec = dict[str, tuple[str | None, int, float]]
_TOP: Spec = {
    "timeZone": ("Code", 1, 1), "availableTime": (None, 0, _MANY), "break": (None, 0, _MANY),
    "notAvailableTime": (None, 0, _MANY), "slotDuration": (None, 0, _MANY),
    "bufferBefore": ("Duration", 0, 1), "bufferAfter": ("Duration", 0, 1),
    "alignment": ("PositiveInt", 0, 1), "capacity": ("PositiveInt", 0, 1),
    "emergencyReserve": (None, 0, _MANY), "minimumNotice": ("Duration", 0, 1),
    "bookingHorizon": ("Duration", 0, 1),
}
_AVAILABLE_TIME: Spec = {"daysOfWeek": ("Code", 1, _MANY), "availableStartTime": ("Time", 0, 1),
                         "availableEndTime": ("Time", 0, 1), "allDay": ("Boolean", 0, 1)}
_BREAK: Spec = {"daysOfWeek": ("Code", 0, _MANY), "startTime": ("Time", 1, 1),
                "endTime": ("Time", 1, 1), "description": ("String", 0, 1)}
_NOT_AVAILABLE: Spec = {"description": ("String", 0, 1), "during": ("Period", 1, 1)}
_SLOT_DURATION: Spec = {"serviceType": ("CodeableConcept", 0, 1),
                        "duration": ("Duration", 1, 1)}
_EMERGENCY: Spec = {"daysOfWeek": ("Code", 0, _MANY), "startTime": ("Time", 1, 1),
                    "endTime": ("Time", 1, 1), "releaseBefore": ("Duration", 1, 1)}
_VALUE_CHECKS = {
    "Code": lambda v: isinstance(v, str) and v.strip() == v != "",
    "Time": lambda v: isinstance(v, str), "String": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "PositiveInt": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "Duration": lambda v: isinstance(v, dict), "Period": lambda v: isinstance(v, dict),
    "CodeableConcept": lambda v: isinstance(v, dict),
}

Found = dict[str, list[tuple[Any, str]]]
"""Sub-extension url -> [(its value, or the sub-extension itself when complex; its path)]."""


def _invalid(expression: str, diagnostics: str, code: str = "value") -> ValidationFailed:
    return ValidationFailed(diagnostics, expression=expression, code=code)


def parse_schedule_rules(schedule: dict) -> AvailabilityRules | None:
    """The Schedule's availability extension as rules, or None when it has none."""
    found = _own_extensions(schedule)
    if not found:
        return None
    index, extension = found[0]
    return _rules_from_extension(extension, f"Schedule.extension[{index}]")


def parse_time_zone(schedule: dict) -> ZoneInfo | None:
    """The zone of our extension's `timeZone`, else of the R4 `timezone` extension."""
    rules = parse_schedule_rules(schedule)
    if rules is not None:
        return rules.time_zone
    for index, extension in enumerate(_extensions(schedule, "Schedule")):
        if extension.get("url") == R4_TIMEZONE_URL:
            path = f"Schedule.extension[{index}]"
            if not _VALUE_CHECKS["Code"](extension.get("valueCode")):
                raise _invalid(path, "the timezone extension needs a valueCode", "required")
            return _zone(extension["valueCode"], path)
    return None


def parse_role_rules(role: dict, *, time_zone: ZoneInfo, slot_minutes: int) -> AvailabilityRules:
    """Rules from R4 `PractitionerRole.availableTime` and `notAvailable.during`."""
    available = tuple(
        _r4_weekly(entry, f"PractitionerRole.availableTime[{i}]", "availableStartTime",
                   "availableEndTime")
        for i, entry in enumerate(_list(role, "availableTime", "PractitionerRole")))
    absences = []
    for i, entry in enumerate(_list(role, "notAvailable", "PractitionerRole")):
        if "during" in entry:  # R4 allows a bare description; it names no time to block
            path = f"PractitionerRole.notAvailable[{i}].during"
            start, end = _period(entry["during"], path, time_zone)
            absences.append(NotAvailable(start, end, entry.get("description")))
    return AvailabilityRules(time_zone=time_zone, available=available,
                             not_available=tuple(absences), slot_minutes_default=slot_minutes)


def parse_location_rules(location: dict, *, time_zone: ZoneInfo,
                         slot_minutes: int) -> AvailabilityRules:
    """Rules from R4 `Location.hoursOfOperation`."""
    available = tuple(
        _r4_weekly(entry, f"Location.hoursOfOperation[{i}]", "openingTime", "closingTime")
        for i, entry in enumerate(_list(location, "hoursOfOperation", "Location")))
    return AvailabilityRules(time_zone=time_zone, available=available,
                             slot_minutes_default=slot_minutes)


def _r4_weekly(entry: dict, path: str, start_key: str, end_key: str) -> WeeklyTime:
    """An R4 weekly entry; no days = every day, missing times = the day's edges."""
    days = entry.get("daysOfWeek") or []
    if not isinstance(days, list):
        raise _invalid(f"{path}.daysOfWeek", "daysOfWeek must be a list of codes")
    day_set = frozenset(_day(code, f"{path}.daysOfWeek[{i}]") for i, code in enumerate(days))
    if entry.get("allDay") is True:
        return WeeklyTime(day_set or ALL_DAYS, _MIDNIGHT, _MIDNIGHT)
    start = _time(entry[start_key], f"{path}.{start_key}") if start_key in entry else _MIDNIGHT
    end = _time(entry[end_key], f"{path}.{end_key}") if end_key in entry else _MIDNIGHT
    return WeeklyTime(day_set or ALL_DAYS, start, end)


@dataclass
class _Draft:
    """Rules fields gathered while walking the extension."""

    fields: dict[str, Any] = field(default_factory=dict)
    by_service: dict[Coding, int] = field(default_factory=dict)


def _rules_from_extension(extension: dict, path: str) -> AvailabilityRules:
    """Validate every sub-extension against its spec and build the rules."""
    found = _collect(extension, path, _TOP)
    ((zone_code, zone_path),) = found["timeZone"]
    zone = _zone(zone_code, zone_path)
    draft = _Draft({"time_zone": zone})
    draft.fields["available"] = tuple(_available_time(sub, sub_path)
                                      for sub, sub_path in found["availableTime"])
    draft.fields["breaks"] = tuple(_break(sub, sub_path) for sub, sub_path in found["break"])
    draft.fields["not_available"] = tuple(_not_available(sub, sub_path, zone)
                                          for sub, sub_path in found["notAvailableTime"])
    draft.fields["emergency"] = tuple(_emergency(sub, sub_path)
                                      for sub, sub_path in found["emergencyReserve"])
    for sub, sub_path in found["slotDuration"]:
        _slot_duration(sub, sub_path, draft)
    draft.fields["slot_minutes_by_service"] = MappingProxyType(draft.by_service)
    for url, name in (("bufferBefore", "buffer_before"), ("bufferAfter", "buffer_after")):
        for value, value_path in found[url]:
            draft.fields[name] = _minutes(value, value_path)
    for url, name in (("minimumNotice", "minimum_notice"), ("bookingHorizon", "booking_horizon")):
        for value, value_path in found[url]:
            draft.fields[name] = timedelta(minutes=_minutes(value, value_path))
    for url in ("alignment", "capacity"):
        for value, _ in found[url]:
            draft.fields[url] = value
    return AvailabilityRules(**draft.fields)


def _available_time(sub: dict, path: str) -> WeeklyTime:
    found = _collect(sub, path, _AVAILABLE_TIME)
    days = frozenset(_day(code, code_path) for code, code_path in found["daysOfWeek"])
    times = found["availableStartTime"] + found["availableEndTime"]
    if any(value is True for value, _ in found["allDay"]):
        if times:
            raise _invalid(times[0][1], "an allDay availableTime cannot also give times")
        return WeeklyTime(days, _MIDNIGHT, _MIDNIGHT)
    if len(times) != 2:
        raise _invalid(path, "availableTime needs availableStartTime and availableEndTime "
                             "unless allDay is true", "required")
    (start, start_path), (end, end_path) = times
    return WeeklyTime(days, _time(start, start_path), _time(end, end_path))


def _break(sub: dict, path: str) -> WeeklyTime:
    found = _collect(sub, path, _BREAK)
    days = frozenset(_day(code, code_path) for code, code_path in found["daysOfWeek"])
    (start, start_path), (end, end_path) = found["startTime"] + found["endTime"]
    return WeeklyTime(days or ALL_DAYS, _time(start, start_path), _time(end, end_path))


def _emergency(sub: dict, path: str) -> EmergencyWindow:
    found = _collect(sub, path, _EMERGENCY)
    days = frozenset(_day(code, code_path) for code, code_path in found["daysOfWeek"])
    (start, start_path), (end, end_path) = found["startTime"] + found["endTime"]
    ((lead, lead_path),) = found["releaseBefore"]
    return EmergencyWindow(days or ALL_DAYS, _time(start, start_path), _time(end, end_path),
                           timedelta(minutes=_minutes(lead, lead_path)))


def _not_available(sub: dict, path: str, zone: ZoneInfo) -> NotAvailable:
    found = _collect(sub, path, _NOT_AVAILABLE)
    ((during, during_path),) = found["during"]
    start, end = _period(during, during_path, zone)
    description = found["description"][0][0] if found["description"] else None
    return NotAvailable(start, end, description)


def _slot_duration(sub: dict, path: str, draft: _Draft) -> None:
    """One slot length: the default when it names no serviceType, else per coding."""
    found = _collect(sub, path, _SLOT_DURATION)
    ((duration, duration_path),) = found["duration"]
    minutes = _minutes(duration, duration_path)
    if minutes <= 0:
        raise _invalid(duration_path, "a slot duration must be longer than zero minutes")
    if not found["serviceType"]:
        if "slot_minutes_default" in draft.fields:
            raise _invalid(path, "only one slotDuration may omit serviceType", "structure")
        draft.fields["slot_minutes_default"] = minutes
        return
    ((concept, concept_path),) = found["serviceType"]
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    if not codings:
        raise _invalid(concept_path, "serviceType needs at least one coding with a code",
                       "required")
    for coding in codings:
        key = (coding.get("system"), coding["code"])
        if draft.by_service.get(key, minutes) != minutes:
            raise _invalid(path, f"two slot durations for service {key[1]!r}", "structure")
        draft.by_service[key] = minutes


def _collect(extension: dict, path: str, spec: Spec) -> Found:
    """Group sub-extensions by url, checking names, value types and cardinalities."""
    found: Found = {url: [] for url in spec}
    subs = extension.get("extension") or []
    if not isinstance(subs, list):
        raise _invalid(path, "extension must be a list", "structure")
    for index, sub in enumerate(subs):
        sub_path = f"{path}.extension[{index}]"
        url = sub.get("url") if isinstance(sub, dict) else None
        if url not in spec:
            raise _invalid(sub_path, f"unknown sub-extension {url!r}; expected one of "
                                     f"{', '.join(spec)}", "structure")
        found[url].append((_sub_value(sub, sub_path, spec[url][0]), sub_path))
    for url, (_, least, most) in spec.items():
        count = len(found[url])
        if count < least:
            raise _invalid(path, f"sub-extension {url!r} is required", "required")
        if count > most:
            raise _invalid(found[url][-1][1], f"sub-extension {url!r} may appear at most "
                                              f"{most:g} time(s)", "structure")
    return found


def _sub_value(sub: dict, path: str, kind: str | None) -> Any:
    """The typed value of a simple sub-extension, or the sub-extension if it is complex."""
    values = [key for key in sub if key.startswith("value")]
    url = sub["url"]
    if kind is None:
        if values:
            raise _invalid(path, f"{url!r} is complex: nested extensions, no {values[0]}",
                           "structure")
        return sub
    key = f"value{kind}"
    if values != [key] or "extension" in sub:
        raise _invalid(path, f"{url!r} needs exactly one {key} and no nested extensions",
                       "structure")
    if not _VALUE_CHECKS[kind](sub[key]):
        raise _invalid(path, f"{url!r} has an invalid {key}: {sub[key]!r}")
    return sub[key]


def _own_extensions(schedule: dict) -> list[tuple[int, dict]]:
    found = [(index, extension)
             for index, extension in enumerate(_extensions(schedule, "Schedule"))
             if extension.get("url") == AVAILABILITY_URL]
    if len(found) > 1:
        raise _invalid(f"Schedule.extension[{found[1][0]}]",
                       "a Schedule may carry only one availability extension", "structure")
    return found


def _extensions(resource: dict, kind: str) -> list[dict]:
    return [e if isinstance(e, dict) else {} for e in _list(resource, "extension", kind)]


def _list(resource: dict, key: str, kind: str) -> list:
    value = resource.get(key) or []
    if not isinstance(value, list):
        raise _invalid(f"{kind}.{key}", f"{key} must be a list", "structure")
    return value


def _zone(code: Any, path: str) -> ZoneInfo:
    try:
        return ZoneInfo(code)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise _invalid(path, f"unknown IANA time zone {code!r} (expected e.g. "
                             "'America/New_York')") from None


def _day(code: Any, path: str) -> int:
    if code not in _DAYS:
        raise _invalid(path, f"unknown day of week {code!r}; expected one of "
                             f"{', '.join(_DAYS)}")
    return _DAYS[code]


def _time(raw: Any, path: str) -> time:
    """A FHIR time on a whole minute (slots are whole minutes)."""
    match = _TIME.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise _invalid(path, f"invalid time {raw!r}; expected hh:mm:ss")
    hours, minutes, seconds, fraction = match.groups()
    if int(seconds) or (fraction and int(fraction[1:])):
        raise _invalid(path, f"time {raw!r} must fall on a whole minute")
    return time(int(hours), int(minutes))


def _minutes(quantity: Any, path: str) -> int:
    """A UCUM Duration (min, h, d or wk) as whole, non-negative minutes."""
    if not isinstance(quantity, dict):
        raise _invalid(path, "a Duration must be an object")
    value, code = quantity.get("value"), quantity.get("code") or quantity.get("unit")
    if quantity.get("system", _UCUM) != _UCUM or code not in _UNIT_MINUTES:
        raise _invalid(path, f"duration unit {code!r} must be UCUM min, h, d or wk")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _invalid(path, f"duration value {value!r} must be a non-negative number")
    minutes = value * _UNIT_MINUTES[code]
    if minutes != int(minutes):
        raise _invalid(path, f"duration {value} {code} is not a whole number of minutes")
    return int(minutes)


def _period(period: Any, path: str, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """A Period as aware instants; date-precision bounds cover whole local days."""
    if not isinstance(period, dict) or not (period.get("start") or period.get("end")):
        raise _invalid(path, "a period needs a start or an end", "required")
    start = _bound(period["start"], f"{path}.start", zone, end=False) \
        if "start" in period else None
    end = _bound(period["end"], f"{path}.end", zone, end=True) if "end" in period else None
    if start and end and end < start:
        raise _invalid(path, "period ends before it starts", "invariant")
    return start, end


def _bound(raw: Any, path: str, zone: ZoneInfo, *, end: bool) -> datetime:
    """A FHIR dateTime; a partial date means its first (or, for an end, its last) local day."""
    match = _DATE.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        try:
            moment = datetime.fromisoformat(raw)
        except (TypeError, ValueError):
            raise _invalid(path, f"invalid dateTime {raw!r}") from None
        if moment.utcoffset() is None:
            raise _invalid(path, f"dateTime {raw!r} with a time needs a time zone")
        return moment
    year, month, day = int(match[1]), int(match[3] or 1), int(match[5] or 1)
    try:
        first = date(year, month, day)
    except ValueError:
        raise _invalid(path, f"invalid date {raw!r}") from None
    if end:  # the day after the last day covered by this precision
        first = _next(first, "day" if match[5] else "month" if match[3] else "year")
    return datetime.combine(first, _MIDNIGHT, tzinfo=zone)


def _next(day: date, unit: str) -> date:
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return date(day.year + 1, 1, 1)


__all__ = ["parse_schedule_rules", "parse_time_zone", "parse_role_rules",
           "parse_location_rules"]
