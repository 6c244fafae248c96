"""Interval math on epoch minutes: examples a scheduler meets, plus properties over random sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_server.scheduling.intervals import (
    covering_runs,
    covering_slots,
    from_minutes,
    index_slots,
    intersect,
    normalize,
    overlaps,
    overlaps_any,
    subtract,
    to_minutes,
    widen,
)

intervals = st.lists(
    st.tuples(st.integers(-50, 300), st.integers(0, 60)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=12,
)


def minutes_of(interval_set: list[tuple[int, int]]) -> set[int]:
    """Every minute a set of half-open intervals holds, for brute-force comparison."""
    return {m for start, end in interval_set for m in range(start, end)}


def reach_from(slots: list[tuple[int, int, str]], slot: tuple[int, int, str]) -> int:
    """Brute force: the furthest end reachable from `slot` through back-to-back slots."""
    return max([slot[1]] + [reach_from(slots, nxt) for nxt in slots if nxt[0] == slot[1]])


# --- conversions ---------------------------------------------------------------------------

def test_minutes_round_trip_in_utc() -> None:
    moment = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
    assert from_minutes(to_minutes(moment)) == moment
    assert to_minutes(datetime(1970, 1, 1, 1, 0, tzinfo=UTC)) == 60


def test_to_minutes_honours_offsets_and_floors_seconds() -> None:
    new_york = timezone(timedelta(hours=-5))
    assert to_minutes(datetime(2025, 1, 6, 4, 0, 59, tzinfo=new_york)) == to_minutes(
        datetime(2025, 1, 6, 9, 0, tzinfo=UTC))


def test_to_minutes_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_minutes(datetime(2025, 1, 6, 9, 0))


# --- examples ------------------------------------------------------------------------------

def test_normalize_merges_overlapping_and_touching_and_drops_empty() -> None:
    assert normalize([(50, 60), (0, 10), (10, 20), (15, 30), (40, 40)]) == [(0, 30), (50, 60)]


def test_subtract_cuts_holes_and_edges() -> None:
    day = [(540, 1020)]
    lunch_and_meeting = [(720, 780), (500, 560), (1000, 1100)]
    assert subtract(day, lunch_and_meeting) == [(560, 720), (780, 1000)]


def test_subtract_one_removal_across_several_bases() -> None:
    assert subtract([(0, 10), (20, 30), (40, 50)], [(5, 45)]) == [(0, 5), (45, 50)]


def test_intersect_keeps_common_time_only() -> None:
    assert intersect([(0, 10), (20, 40)], [(5, 25), (30, 35), (39, 50)]) == [
        (5, 10), (20, 25), (30, 35), (39, 40)]


def test_touching_intervals_do_not_overlap() -> None:
    assert not overlaps((0, 30), (30, 60))
    assert overlaps((0, 31), (30, 60))
    assert not overlaps((10, 10), (0, 60))


def test_widen_adds_buffers_and_refuses_negative_ones() -> None:
    assert widen((600, 630), 10, 5) == (590, 635)
    with pytest.raises(ValueError):
        widen((600, 630), -1, 0)


def test_overlaps_any_bisects_a_normalized_set() -> None:
    merged = normalize([(0, 10), (20, 30)])
    starts, ends = [i[0] for i in merged], [i[1] for i in merged]
    assert overlaps_any(starts, ends, (9, 12))
    assert not overlaps_any(starts, ends, (10, 20))
    assert overlaps_any(starts, ends, (25, 26))
    assert not overlaps_any(starts, ends, (30, 99))
    assert not overlaps_any([], [], (0, 99))


def test_covering_slots_follows_contiguous_slots_but_not_gaps() -> None:
    chains = index_slots([(0, 30, "a"), (30, 60, "b"), (70, 100, "c"), (100, 130, "d")])
    assert covering_slots(chains, (0, 60)) == ("a", "b")
    assert covering_slots(chains, (15, 45)) == ("a", "b")
    assert covering_slots(chains, (0, 30)) == ("a",)
    assert covering_slots(chains, (30, 80)) is None  # gap 60..70
    assert covering_slots(chains, (80, 130)) == ("c", "d")
    assert covering_slots(chains, (15, 45), aligned=True) is None
    assert covering_slots(chains, (130, 140)) is None


def test_covering_slots_finds_a_long_slot_behind_short_ones() -> None:
    chains = index_slots([(0, 120, "long"), (60, 70, "short")])
    assert covering_slots(chains, (80, 110)) == ("long",)


def test_covering_runs_lists_each_slot_start_that_can_host_the_duration() -> None:
    slots = [(0, 30, "a"), (30, 60, "b"), (60, 90, "c"), (120, 150, "d")]
    assert covering_runs(slots, 60) == [(0, ("a", "b")), (30, ("b", "c"))]
    assert covering_runs(slots, 30) == [(0, ("a",)), (30, ("b",)), (60, ("c",)), (120, ("d",))]


# --- properties ----------------------------------------------------------------------------

@given(intervals)
def test_normalize_is_idempotent_and_keeps_the_same_minutes(a: list[tuple[int, int]]) -> None:
    once = normalize(a)
    assert normalize(once) == once
    assert minutes_of(once) == minutes_of(a)
    assert all(x[1] < y[0] for x, y in pairwise(once))  # sorted, disjoint, not touching


@given(intervals, intervals)
def test_subtract_matches_set_difference(a: list[tuple[int, int]],
                                         b: list[tuple[int, int]]) -> None:
    result = subtract(a, b)
    assert minutes_of(result) == minutes_of(a) - minutes_of(b)
    assert intersect(result, b) == []
    assert subtract(result, a) == []  # lies inside the base
    assert normalize(result) == result


@given(intervals, intervals)
def test_intersect_matches_set_intersection(a: list[tuple[int, int]],
                                            b: list[tuple[int, int]]) -> None:
    result = intersect(a, b)
    assert minutes_of(result) == minutes_of(a) & minutes_of(b)
    assert subtract(result, a) == [] and subtract(result, b) == []
    assert intersect(a, b) == intersect(b, a)


@given(intervals, st.tuples(st.integers(-60, 360), st.integers(0, 60)))
def test_overlaps_any_agrees_with_pairwise_overlaps(a: list[tuple[int, int]],
                                                    probe: tuple[int, int]) -> None:
    merged = normalize(a)
    interval = (probe[0], probe[0] + probe[1])
    expected = any(overlaps(interval, x) for x in a)
    assert overlaps_any([x[0] for x in merged], [x[1] for x in merged], interval) == expected


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 4)), max_size=10),
       st.integers(0, 100), st.integers(1, 40))
def test_covering_slots_ids_are_contiguous_and_cover(raw: list[tuple[int, int]], start: int,
                                                     length: int) -> None:
    slots = [(s * 10, s * 10 + n * 10, f"s{i}") for i, (s, n) in enumerate(raw)]
    by_id = {slot[2]: slot for slot in slots}
    ids = covering_slots(index_slots(slots), (start, start + length))
    if ids is None:
        assert not any(reach_from(slots, slot) >= start + length
                       for slot in slots if slot[0] <= start < slot[1])
        return
    chain = [by_id[i] for i in ids]
    assert chain[0][0] <= start < chain[0][1] and chain[-1][1] >= start + length
    assert all(x[1] == y[0] for x, y in pairwise(chain))
