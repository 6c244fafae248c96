"""Availability rules (when a Schedule is open) and their expansion into UTC intervals and slots.

Rules are local wall-clock times; they become UTC epoch-minute intervals one local date at a
time with `zoneinfo`, so a 09:00-17:00 rule stays 09:00-17:00 local on DST transition days.

Wall-clock boundaries map to *the first instant at which the local clock reads that time or
later on that date*: an ambiguous time (the repeated hour when clocks fall back) is its first
occurrence (fold=0); a nonexistent time (skipped when clocks spring forward) moves forward to
the end of the gap (02:30 on the New York spring-forward day is 03:00 EDT). The mapping is
monotonic, so a block never turns negative.

A block whose end is not after its start runs past midnight into the next day; `allDay` is
00:00-00:00, i.e. the whole local day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from fhir_server.scheduling.intervals import from_minutes, subtract, to_minutes

__all__ = [
    "AVAILABILITY_URL", "R4_TIMEZONE_URL", "SLOT_EMERGENCY_RESERVE_URL", "DEFAULT_SLOT_MINUTES",
    "WeeklyTime", "NotAvailable", "EmergencyWindow", "AvailabilityRules", "PlannedSlot",
    "rules_from_schedule", "rules_from_practitioner_role", "rules_from_location",
    "schedule_time_zone", "expand_availability", "plan_slots", "bookable_window",
]

AVAILABILITY_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/schedule-availability"
SLOT_EMERGENCY_RESERVE_URL = (
    "http://fhir-scheduler.org/fhir/StructureDefinition/slot-emergency-reserve")
R4_TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
DEFAULT_SLOT_MINUTES = 30
ALL_DAYS: frozenset[int] = frozenset(range(7))
Interval = tuple[int, int]
Coding = tuple[str | None, str]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
# Slot grids are anchored on each block's start, so plans agree whatever the window. Blocks
# are expanded this far around the window; a block longer than that (all-day availability for
# over a week) may be cut off, so its true start is unknown and it uses the UTC epoch grid.
_PLAN_PADDING = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class WeeklyTime:
    """A recurring local wall-clock span on some weekdays (0=Monday); end <= start wraps."""

    days: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class NotAvailable:
    """A one-off absence (holiday, leave) as aware instants; None = unbounded on that side."""

    start: datetime | None
    end: datetime | None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class EmergencyWindow:
    """Weekly times whose slots stay reserved for emergencies until `release_before` ahead."""

    days: frozenset[int]
    start: time
    end: time
    release_before: timedelta


@dataclass(frozen=True)
class AvailabilityRules:
    """Everything needed to say when a Schedule is open and how to cut it into slots."""

    time_zone: ZoneInfo
    available: tuple[WeeklyTime, ...]
    breaks: tuple[WeeklyTime, ...] = ()
    not_available: tuple[NotAvailable, ...] = ()
    slot_minutes_default: int = DEFAULT_SLOT_MINUTES
    slot_minutes_by_service: Mapping[Coding, int] = field(
        default_factory=lambda: MappingProxyType({}))
    buffer_before: int = 0
    buffer_after: int = 0
    alignment: int | None = None
    capacity: int = 1
    emergency: tuple[EmergencyWindow, ...] = ()
    minimum_notice: timedelta | None = None
    booking_horizon: timedelta | None = None

    def __post_init__(self) -> None:
        minutes = [self.slot_minutes_default, *self.slot_minutes_by_service.values()]
        if min(minutes) <= 0 or self.capacity < 1 or (self.alignment or 1) < 1:
            raise ValueError("slot lengths, capacity and alignment must be positive")
        if self.buffer_before < 0 or self.buffer_after < 0:
            raise ValueError("buffers cannot be negative")

    def slot_minutes_for(self, service_codings: Sequence[Coding]) -> int:
        """Slot length for a service: first coding with its own length, else the default."""
        for system, code in service_codings:
            for key in ((system, code), (None, code)):
                if key in self.slot_minutes_by_service:
                    return self.slot_minutes_by_service[key]
        return self.slot_minutes_default


@dataclass(frozen=True, slots=True)
class PlannedSlot:
    """A slot the rules call for; `emergency_release` is when a reserved one opens to all."""

    start: datetime
    end: datetime
    emergency_release: datetime | None = None
    capacity: int = 1


# The parsers build these dataclasses, so they are imported where used, not at the top.

def rules_from_schedule(schedule: dict) -> AvailabilityRules | None:
    """Rules from the Schedule's availability extension, or None when it has none."""
    from fhir_server.scheduling.availability_parse import parse_schedule_rules
    return parse_schedule_rules(schedule)


def rules_from_practitioner_role(role: dict, *, time_zone: ZoneInfo,
                                 slot_minutes: int = DEFAULT_SLOT_MINUTES) -> AvailabilityRules:
    """R4 fallback: `PractitionerRole.availableTime` and `notAvailable.during`."""
    from fhir_server.scheduling.availability_parse import parse_role_rules
    return parse_role_rules(role, time_zone=time_zone, slot_minutes=slot_minutes)


def rules_from_location(location: dict, *, time_zone: ZoneInfo,
                        slot_minutes: int = DEFAULT_SLOT_MINUTES) -> AvailabilityRules:
    """R4 fallback: `Location.hoursOfOperation` (a room is open when its site is)."""
    from fhir_server.scheduling.availability_parse import parse_location_rules
    return parse_location_rules(location, time_zone=time_zone, slot_minutes=slot_minutes)


def schedule_time_zone(schedule: dict) -> ZoneInfo | None:
    """The Schedule's IANA zone from our extension or the R4 `timezone` extension."""
    from fhir_server.scheduling.availability_parse import parse_time_zone
    return parse_time_zone(schedule)


def bookable_window(rules: AvailabilityRules, now: datetime) -> tuple[datetime, datetime | None]:
    """Earliest and latest start patients may book now (minimum notice, booking horizon)."""
    earliest = now + (rules.minimum_notice or timedelta(0))
    latest = None if rules.booking_horizon is None else now + rules.booking_horizon
    return earliest, latest


def expand_availability(rules: AvailabilityRules, start: datetime,
                        end: datetime) -> list[Interval]:
    """Open time in [start, end) as sorted, merged UTC epoch-minute intervals."""
    low, high = _ceil_minutes(start), to_minutes(end)
    if high <= low:
        return []
    open_time = _open_intervals(rules, start, end)
    return [(max(s, low), min(e, high)) for s, e in open_time if s < high and e > low]


def plan_slots(rules: AvailabilityRules, start: datetime, end: datetime, *,
               service_codings: Sequence[Coding] = ()) -> list[PlannedSlot]:
    """Slots lying wholly inside [start, end), cut from each open block on its own grid."""
    length = rules.slot_minutes_for(service_codings)
    pitch = rules.buffer_after + length + rules.buffer_before
    step = rules.alignment or pitch
    low, high = _ceil_minutes(start), to_minutes(end)
    blocks = _open_intervals(rules, start - _PLAN_PADDING, end + _PLAN_PADDING)
    reserved = _emergency_intervals(rules, start, end)
    planned = []
    for block_start, block_end in blocks:
        if block_end <= low or block_start >= high:
            continue
        anchor = 0 if block_end - block_start > _PLAN_PADDING // _MINUTE else block_start
        for slot_start in _slot_starts(block_start, block_end, anchor, length, step, pitch):
            if slot_start >= low and slot_start + length <= high:
                release = _release_minute(slot_start, reserved)
                planned.append(PlannedSlot(
                    start=from_minutes(slot_start), end=from_minutes(slot_start + length),
                    emergency_release=None if release is None else from_minutes(release),
                    capacity=rules.capacity))
    return planned


def _slot_starts(block_start: int, block_end: int, anchor: int, length: int, step: int,
                 pitch: int) -> Iterable[int]:
    """Starts on the `anchor + k*step` grid, one slot plus buffers apart, that fit the block."""
    candidate = _align_up(block_start, anchor, step)
    while candidate + length <= block_end:
        yield candidate
        candidate = _align_up(candidate + pitch, anchor, step)


def _align_up(minute: int, anchor: int, step: int) -> int:
    """The first grid point at or after `minute`."""
    return anchor + -((anchor - minute) // step) * step


def _release_minute(slot_start: int, reserved: list[tuple[int, int, int]]) -> int | None:
    """When a slot starting in an emergency window opens; the latest release wins."""
    releases = [slot_start - hold for low, high, hold in reserved if low <= slot_start < high]
    return max(releases) if releases else None


def _emergency_intervals(rules: AvailabilityRules, start: datetime,
                         end: datetime) -> list[tuple[int, int, int]]:
    """Emergency windows over the period as (start, end, release lead in minutes)."""
    spans = []
    for window in rules.emergency:
        weekly = WeeklyTime(window.days or ALL_DAYS, window.start, window.end)
        lead = window.release_before // _MINUTE
        spans += [(s, e, lead) for s, e in _weekly_intervals((weekly,), rules.time_zone,
                                                              start, end)]
    return spans


def _open_intervals(rules: AvailabilityRules, start: datetime, end: datetime) -> list[Interval]:
    """Available weekly times minus breaks and absences, merged (not clipped to the period)."""
    available = _weekly_intervals(rules.available, rules.time_zone, start, end)
    breaks = tuple(replace(b, days=b.days or ALL_DAYS) for b in rules.breaks)
    closed = _weekly_intervals(breaks, rules.time_zone, start, end)
    closed += [_absence_interval(absence) for absence in rules.not_available]
    return subtract(available, closed)


def _absence_interval(absence: NotAvailable) -> Interval:
    """An absence in epoch minutes, widened to whole minutes so no part of it stays open."""
    low = -(2**62) if absence.start is None else to_minutes(absence.start)
    high = 2**62 if absence.end is None else _ceil_minutes(absence.end)
    return low, high


def _weekly_intervals(times: Iterable[WeeklyTime], zone: ZoneInfo, start: datetime,
                      end: datetime) -> list[Interval]:
    """Each weekly time on every local date touching [start, end), as UTC intervals."""
    times = tuple(times)
    day = start.astimezone(zone).date() - timedelta(days=1)  # yesterday's overnight blocks
    last = end.astimezone(zone).date()
    found: list[Interval] = []
    while day <= last:
        for weekly in times:
            if day.weekday() in weekly.days:
                end_day = day if weekly.end > weekly.start else day + timedelta(days=1)
                low = _wall_clock_minute(day, weekly.start, zone)
                high = _wall_clock_minute(end_day, weekly.end, zone)
                if low < high:
                    found.append((low, high))
        day += timedelta(days=1)
    return found


def _wall_clock_minute(day: date, at: time, zone: ZoneInfo) -> int:
    """Epoch minute at which the local clock first reads `at` or later on `day`."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0)
    if _local(first.astimezone(UTC), zone) == naive:
        return _ceil_minutes(first)
    # In a spring-forward gap fold=1 reads the gap with the later offset (an earlier instant,
    # still before the jump) and fold=0 with the earlier offset (after it): the jump is between.
    before = _seconds(naive.replace(tzinfo=zone, fold=1))
    after = _seconds(first)
    while after - before > 1:
        middle = (before + after) // 2
        if _local(_EPOCH + timedelta(seconds=middle), zone) >= naive:
            after = middle
        else:
            before = middle
    return -(-after // 60)


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall-clock reading of an instant."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _seconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)


def _ceil_minutes(moment: datetime) -> int:
    """Ceiling of an aware datetime in UTC epoch minutes."""
    floor = to_minutes(moment)
    # Compare in UTC: PEP 495 makes `==` False across zones for ambiguous local times.
    return floor if from_minutes(floor) == moment.astimezone(UTC) else floor + 1
