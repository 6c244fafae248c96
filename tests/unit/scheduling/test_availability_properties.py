"""Property tests: local hours survive DST in any zone, and planned slots respect the rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fhir_server.scheduling.availability import (
    AvailabilityRules,
    WeeklyTime,
    expand_availability,
    plan_slots,
)

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Sao_Paulo",
         "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham", "Europe/Dublin"]
FIRST_DAY, LAST_DAY = date(2010, 1, 1), date(2027, 12, 31)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MON_FRI = frozenset(range(5))
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@cache
def transition_days(zone_name: str) -> list[date]:
    """Local dates on which the zone's UTC offset changes, 2010-2027."""
    zone = ZoneInfo(zone_name)
    days, day = [], FIRST_DAY
    while day < LAST_DAY:
        after = day + timedelta(days=1)
        if (datetime.combine(day, time(0), zone).utcoffset()
                != datetime.combine(after, time(0), zone).utcoffset()):
            # The change happened after midnight on `day`, or exactly at midnight of `after`.
            noon = datetime.combine(day, time(12), zone).utcoffset()
            days.append(day if noon != datetime.combine(day, time(0), zone).utcoffset()
                        else after)
        day = after
    return days


@st.composite
def zone_and_day(draw: st.DrawFn) -> tuple[ZoneInfo, date]:
    """A zone and a day, mostly a DST transition day of that zone or one next to it."""
    name = draw(st.sampled_from(ZONES))
    any_day = st.dates(FIRST_DAY, LAST_DAY)
    if not transition_days(name) or draw(st.integers(0, 3)) == 0:
        return ZoneInfo(name), draw(any_day)
    day = draw(st.sampled_from(transition_days(name)))
    return ZoneInfo(name), day + timedelta(days=draw(st.sampled_from([-1, 0, 0, 0, 1])))


# DST changes in these zones happen between 23:00 and 04:00 local; aim there half the time.
minute_times = st.integers(0, 1439).map(lambda n: time(n // 60, n % 60))
night_times = st.integers(-60, 240).map(lambda n: time(n % 1440 // 60, n % 60))


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def instant(minute: int) -> datetime:
    return EPOCH + timedelta(minutes=minute)


def wall_clock(minute: int, zone: ZoneInfo) -> datetime:
    return instant(minute).astimezone(zone).replace(tzinfo=None)


def test_the_strategy_really_reaches_transition_days() -> None:
    assert {date(2024, 3, 10), date(2024, 11, 3)} <= set(transition_days("America/New_York"))
    assert {date(2027, 3, 28), date(2027, 10, 31)} <= set(transition_days("Europe/Berlin"))
    assert {date(2025, 4, 6), date(2025, 10, 5)} <= set(transition_days("Australia/Sydney"))
    assert date(2018, 11, 4) in transition_days("America/Sao_Paulo")
    assert transition_days("Asia/Kolkata") == []


@SETTINGS
@given(zone_and_day())
def test_nine_to_five_is_nine_to_five_local_every_working_day(case: tuple[ZoneInfo, date]) -> None:
    zone, day = case
    rules = AvailabilityRules(time_zone=zone, available=(WeeklyTime(MON_FRI, time(9), time(17)),))

    opened = expand_availability(rules, local_midnight(day, zone),
                                 local_midnight(day + timedelta(days=1), zone))

    if day.weekday() >= 5:
        assert opened == []
        return
    assert len(opened) == 1
    (start, end), = opened
    assert wall_clock(start, zone) == datetime.combine(day, time(9))
    assert wall_clock(end, zone) == datetime.combine(day, time(17))
    assert end - start == 8 * 60


@SETTINGS
@given(zone_and_day(), minute_times | night_times)
def test_a_block_opens_when_the_clock_first_reads_its_start(case: tuple[ZoneInfo, date],
                                                             at: time) -> None:
    zone, day = case
    end = (datetime.combine(day, at) + timedelta(minutes=150)).time()
    assume(end > at)
    rules = AvailabilityRules(time_zone=zone, available=(WeeklyTime(frozenset(range(7)), at,
                                                                    end),))
    midnight = (local_midnight(day, zone) - EPOCH) // timedelta(minutes=1)

    opened = expand_availability(rules, local_midnight(day, zone) - timedelta(hours=3),
                                 local_midnight(day + timedelta(days=1), zone))

    starting = [s for s, _ in opened if wall_clock(s, zone).date() == day]
    assume(starting)  # a block lying wholly inside a DST gap is empty
    (start,) = starting
    target = datetime.combine(day, at)
    assert wall_clock(start, zone) >= target
    # Before it, the clock never read `at` that day: ambiguous times take the first pass.
    assert all(wall_clock(m, zone) < target for m in range(midnight, start))


weekly_times = st.builds(
    WeeklyTime,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 287).map(lambda n: time(n // 12, n % 12 * 5)),
    end=st.integers(0, 287).map(lambda n: time(n // 12, n % 12 * 5)),
)


@st.composite
def random_rules(draw: st.DrawFn) -> AvailabilityRules:
    zone, _ = draw(zone_and_day())
    return AvailabilityRules(
        time_zone=zone,
        available=tuple(draw(st.lists(weekly_times, min_size=1, max_size=3))),
        breaks=tuple(draw(st.lists(weekly_times, max_size=2))),
        slot_minutes_default=draw(st.integers(5, 120)),
        buffer_before=draw(st.integers(0, 20)),
        buffer_after=draw(st.integers(0, 20)),
        alignment=draw(st.none() | st.integers(1, 60)),
    )


def overlaps(low: int, high: int, intervals: list[tuple[int, int]]) -> bool:
    return any(low < e and s < high for s, e in intervals)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_rules(), zone_and_day())
def test_planned_slots_lie_in_availability_and_avoid_breaks(rules: AvailabilityRules,
                                                            case: tuple[ZoneInfo, date]) -> None:
    _, day = case
    start = local_midnight(day, rules.time_zone)
    end = start + timedelta(days=3)
    opened = expand_availability(rules, start, end)
    break_rules = AvailabilityRules(time_zone=rules.time_zone, available=rules.breaks)
    breaks = expand_availability(break_rules, start - timedelta(days=2), end + timedelta(days=2))
    step = rules.alignment or (rules.slot_minutes_default + rules.buffer_before
                               + rules.buffer_after)

    slots = plan_slots(rules, start, end)

    as_minutes = [((s.start - EPOCH) // timedelta(minutes=1),
                   (s.end - EPOCH) // timedelta(minutes=1)) for s in slots]
    for (low, high), previous in zip(as_minutes, [None, *as_minutes][:-1], strict=True):
        assert high - low == rules.slot_minutes_default
        block = [(s, e) for s, e in opened if s <= low and high <= e]
        assert block, "slot outside availability"
        assert not overlaps(low, high, breaks), "slot overlaps a break"
        if previous is not None and previous[1] > block[0][0]:
            assert low >= previous[1] + rules.buffer_after + rules.buffer_before
        if block[0][0] > (start - EPOCH) // timedelta(minutes=1):
            assert (low - block[0][0]) % step == 0, "slot start off the alignment grid"
