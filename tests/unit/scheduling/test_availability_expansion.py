"""Expanding availability rules into UTC intervals and cutting them into slots."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from fhir_server.scheduling.availability import (
    AvailabilityRules,
    EmergencyWindow,
    NotAvailable,
    PlannedSlot,
    WeeklyTime,
    expand_availability,
    plan_slots,
    rules_from_schedule,
)
from tests.unit.scheduling.availability_factories import (
    WEEKDAYS,
    availability,
    available_time,
    break_time,
    make_schedule,
    minutes,
    sub,
    time_off,
)

NY = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")
ALL = frozenset(range(7))
MON_FRI = frozenset(range(5))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def as_utc(intervals: list[tuple[int, int]]) -> list[tuple[datetime, datetime]]:
    epoch = utc(1970, 1, 1)
    return [(epoch + timedelta(minutes=s), epoch + timedelta(minutes=e)) for s, e in intervals]


def nine_to_five(zone: ZoneInfo = NY, days: frozenset[int] = ALL,
                 **more: object) -> AvailabilityRules:
    return AvailabilityRules(time_zone=zone, available=(WeeklyTime(days, time(9), time(17)),),
                             **more)  # type: ignore[arg-type]


def starts(slots: list[PlannedSlot]) -> list[str]:
    return [f"{s.start.astimezone(NY):%H:%M}" for s in slots]


def test_spring_forward_day_keeps_local_hours() -> None:
    opened = as_utc(expand_availability(nine_to_five(), utc(2024, 3, 9), utc(2024, 3, 11)))

    assert opened == [(utc(2024, 3, 9, 14), utc(2024, 3, 9, 22)),
                      (utc(2024, 3, 10, 13), utc(2024, 3, 10, 21))]


def test_fall_back_day_keeps_local_hours() -> None:
    opened = as_utc(expand_availability(nine_to_five(), utc(2024, 11, 2), utc(2024, 11, 4)))

    assert opened == [(utc(2024, 11, 2, 13), utc(2024, 11, 2, 21)),
                      (utc(2024, 11, 3, 14), utc(2024, 11, 3, 22))]


def test_nonexistent_time_moves_to_the_end_of_the_gap() -> None:
    night = AvailabilityRules(time_zone=NY, available=(WeeklyTime(ALL, time(2, 30), time(4)),))

    opened = as_utc(expand_availability(night, utc(2024, 3, 10), utc(2024, 3, 11)))

    # 02:30 does not exist that night; the clock first reads >= 02:30 at 03:00 EDT = 07:00Z.
    assert opened == [(utc(2024, 3, 10, 7), utc(2024, 3, 10, 8))]


def test_ambiguous_time_is_its_first_occurrence() -> None:
    night = AvailabilityRules(time_zone=NY, available=(WeeklyTime(ALL, time(1, 30), time(3)),))

    opened = as_utc(expand_availability(night, utc(2024, 11, 3), utc(2024, 11, 4)))

    # 01:30 happens twice; the first is EDT (05:30Z). 03:00 EST is 08:00Z: 2.5 h of work.
    assert opened == [(utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 8))]


def test_overnight_block_runs_into_the_next_day() -> None:
    nights = AvailabilityRules(time_zone=UTC_ZONE, available=(WeeklyTime(frozenset({4}),
                                                                         time(22), time(6)),))

    opened = as_utc(expand_availability(nights, utc(2025, 1, 3), utc(2025, 1, 5)))

    assert opened == [(utc(2025, 1, 3, 22), utc(2025, 1, 4, 6))]



def test_window_clips_and_weekends_are_closed() -> None:
    opened = as_utc(expand_availability(nine_to_five(days=MON_FRI),
                                        utc(2025, 1, 3, 20), utc(2025, 1, 6, 15)))

    assert opened == [(utc(2025, 1, 3, 20), utc(2025, 1, 3, 22)),
                      (utc(2025, 1, 6, 14), utc(2025, 1, 6, 15))]


def test_breaks_and_time_off_are_subtracted() -> None:
    rules = rules_from_schedule(make_schedule(availability(
        available_time(WEEKDAYS, "09:00:00", "17:00:00"),
        break_time("12:00:00", "12:45:00"),
        break_time("15:00:00", "16:00:00", ["tue"]),
        time_off("2025-01-08", "2025-01-08", "Training day"),
        time_off("2025-01-09T10:00:00-05:00", "2025-01-09T11:30:00-05:00", "Dentist"),
    )))
    assert rules is not None

    opened = as_utc(expand_availability(rules, utc(2025, 1, 7), utc(2025, 1, 10)))

    assert opened == [
        (utc(2025, 1, 7, 14), utc(2025, 1, 7, 17)), (utc(2025, 1, 7, 17, 45), utc(2025, 1, 7, 20)),
        (utc(2025, 1, 7, 21), utc(2025, 1, 7, 22)),
        (utc(2025, 1, 9, 14), utc(2025, 1, 9, 15)), (utc(2025, 1, 9, 16, 30), utc(2025, 1, 9, 17)),
        (utc(2025, 1, 9, 17, 45), utc(2025, 1, 9, 22)),
    ]


def test_open_ended_time_off_closes_everything_after_it() -> None:
    rules = nine_to_five(not_available=(NotAvailable(utc(2025, 1, 7, 16), None, "Left"),))

    opened = as_utc(expand_availability(rules, utc(2025, 1, 6), utc(2025, 1, 12)))

    assert opened == [(utc(2025, 1, 6, 14), utc(2025, 1, 6, 22)),
                      (utc(2025, 1, 7, 14), utc(2025, 1, 7, 16))]


def test_overlapping_rules_merge() -> None:
    rules = AvailabilityRules(time_zone=NY, available=(
        WeeklyTime(ALL, time(9), time(12)), WeeklyTime(ALL, time(11), time(14)),
        WeeklyTime(ALL, time(14), time(15))))

    opened = as_utc(expand_availability(rules, utc(2025, 1, 6), utc(2025, 1, 7)))

    assert opened == [(utc(2025, 1, 6, 14), utc(2025, 1, 6, 20))]


def test_slots_are_cut_consecutively_and_a_partial_tail_is_dropped() -> None:
    rules = AvailabilityRules(time_zone=NY, available=(WeeklyTime(ALL, time(9), time(10, 50)),),
                              slot_minutes_default=25)

    slots = plan_slots(rules, utc(2025, 1, 6), utc(2025, 1, 7))

    assert starts(slots) == ["09:00", "09:25", "09:50", "10:15"]
    assert all(s.end - s.start == timedelta(minutes=25) for s in slots)
    assert all(s.capacity == 1 and s.emergency_release is None for s in slots)


def test_alignment_puts_starts_on_a_grid_from_the_block_start() -> None:
    rules = AvailabilityRules(time_zone=NY, available=(WeeklyTime(ALL, time(9, 10), time(11)),),
                              slot_minutes_default=20, alignment=15)

    slots = plan_slots(rules, utc(2025, 1, 6), utc(2025, 1, 7))

    assert starts(slots) == ["09:10", "09:40", "10:10", "10:40"]


def test_buffers_separate_consecutive_slots() -> None:
    rules = nine_to_five(slot_minutes_default=30, buffer_before=5, buffer_after=10,
                         alignment=5)

    slots = plan_slots(rules, utc(2025, 1, 6, 14), utc(2025, 1, 6, 16))

    assert starts(slots) == ["09:00", "09:45", "10:30"]


def test_default_alignment_with_buffers_is_the_pitch() -> None:
    rules = nine_to_five(slot_minutes_default=30, buffer_after=10)

    slots = plan_slots(rules, utc(2025, 1, 6, 14), utc(2025, 1, 6, 16))

    assert starts(slots) == ["09:00", "09:40", "10:20"]


def test_slot_length_per_service() -> None:
    snomed = "http://snomed.info/sct"
    rules = nine_to_five(slot_minutes_default=15,
                         slot_minutes_by_service={(snomed, "29303009"): 45})

    ecg = plan_slots(rules, utc(2025, 1, 6, 14), utc(2025, 1, 6, 16),
                     service_codings=[(snomed, "29303009")])
    other = plan_slots(rules, utc(2025, 1, 6, 14), utc(2025, 1, 6, 16))

    assert starts(ecg) == ["09:00", "09:45"]
    assert len(other) == 8


def test_capacity_is_carried_on_every_slot() -> None:
    slots = plan_slots(nine_to_five(capacity=8), utc(2025, 1, 6), utc(2025, 1, 7))

    assert len(slots) == 16
    assert {s.capacity for s in slots} == {8}


def test_grid_does_not_depend_on_the_window() -> None:
    rules = nine_to_five(slot_minutes_default=45)

    whole_day = plan_slots(rules, utc(2025, 1, 6), utc(2025, 1, 7))
    from_ten = plan_slots(rules, utc(2025, 1, 6, 15, 10), utc(2025, 1, 7))

    assert from_ten == [s for s in whole_day if s.start >= utc(2025, 1, 6, 15, 10)]
    assert starts(from_ten)[0] == "10:30"


def test_emergency_slots_carry_their_release_instant() -> None:
    window = EmergencyWindow(frozenset({0}), time(16), time(17), timedelta(hours=2))
    rules = nine_to_five(emergency=(window,))

    monday = plan_slots(rules, utc(2025, 1, 6), utc(2025, 1, 7))
    tuesday = plan_slots(rules, utc(2025, 1, 7), utc(2025, 1, 8))

    reserved = [(f"{s.start.astimezone(NY):%H:%M}", s.emergency_release) for s in monday
                if s.emergency_release]
    assert reserved == [("16:00", utc(2025, 1, 6, 19)), ("16:30", utc(2025, 1, 6, 19, 30))]
    assert not any(s.emergency_release for s in tuesday)


def test_emergency_window_from_the_extension() -> None:
    rules = rules_from_schedule(make_schedule(availability(
        available_time(WEEKDAYS, "09:00:00", "17:00:00"),
        sub("emergencyReserve", extension=[
            sub("startTime", valueTime="09:00:00"), sub("endTime", valueTime="10:00:00"),
            sub("releaseBefore", valueDuration=minutes(24, "h"))]))))
    assert rules is not None

    slots = plan_slots(rules, utc(2025, 1, 7), utc(2025, 1, 8))

    assert [s.emergency_release for s in slots[:3]] == [
        utc(2025, 1, 6, 14), utc(2025, 1, 6, 14, 30), None]


def test_naive_window_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        expand_availability(nine_to_five(), datetime(2025, 1, 6), utc(2025, 1, 7))


def test_round_the_clock_availability_plans_the_same_grid_from_any_window() -> None:
    ten_days = (NotAvailable(None, utc(2025, 1, 6, 5)), NotAvailable(utc(2025, 1, 16, 5), None))
    rules = AvailabilityRules(time_zone=NY, available=(WeeklyTime(ALL, time(0), time(0)),),
                              not_available=ten_days, slot_minutes_default=45)

    early = plan_slots(rules, utc(2025, 1, 6), utc(2025, 1, 17))
    late = plan_slots(rules, utc(2025, 1, 15, 7), utc(2025, 1, 16))

    assert late and late == [s for s in early if utc(2025, 1, 15, 7) <= s.start
                             and s.end <= utc(2025, 1, 16)]
