"""The slot finder: AND across actor types, OR with preference inside one, and every rule that
can take a time away (buffers, patient clashes, emergency holds, notice, horizon)."""

from __future__ import annotations

import pytest

from fhir_server.scheduling.finding import (
    ActorGroup,
    ActorSlots,
    Candidate,
    FindRequest,
    FreeSlot,
    find_candidates,
)

DAY = 1_440
NINE = 9 * 60  # minutes since the epoch day start; the finder only sees ints


def make_actor(actor: str, starts: list[int], *, length: int = 30, schedule: str | None = None,
               busy: tuple[tuple[int, int], ...] = (), buffer_before: int = 0,
               buffer_after: int = 0, emergency: dict[int, int] | None = None) -> ActorSlots:
    """An actor with one slot of `length` minutes at each start; `emergency` maps start→release."""
    schedule_id = schedule or f"sched-{actor.split('/')[1]}"
    slots = tuple(
        FreeSlot(id=f"{actor.split('/')[1]}-{start}", schedule_id=schedule_id, start=start,
                 end=start + length, emergency_release=(emergency or {}).get(start))
        for start in starts)
    return ActorSlots(actor=actor, actor_type=actor.split("/")[0], slots=slots, busy=busy,
                      buffer_before=buffer_before, buffer_after=buffer_after)


def make_request(*groups: tuple[ActorSlots, ...], duration: int = 30, start: int = 0,
                 end: int = 2 * DAY, **rules: object) -> FindRequest:
    """A request whose groups are given as tuples of options, most preferred first."""
    return FindRequest(
        start=start, end=end, duration=duration,
        groups=tuple(ActorGroup(actor_type=g[0].actor_type, options=g) for g in groups),
        **rules,  # type: ignore[arg-type]
    )


def starts_of(candidates: list[Candidate]) -> list[int]:
    return [c.start for c in candidates]


def half_hours(first: int, count: int) -> list[int]:
    return [first + 30 * i for i in range(count)]


def test_single_practitioner_offers_each_free_slot_in_time_order() -> None:
    doc = make_actor("Practitioner/a", [NINE + 60, NINE, NINE + 30])
    found, total = find_candidates(make_request((doc,)))
    assert found == [
        Candidate(NINE, NINE + 30, (("Practitioner/a", ("a-540",)),)),
        Candidate(NINE + 30, NINE + 60, (("Practitioner/a", ("a-570",)),)),
        Candidate(NINE + 60, NINE + 90, (("Practitioner/a", ("a-600",)),)),
    ]
    assert total == 3


def test_practitioner_and_room_must_both_be_free() -> None:
    doc = make_actor("Practitioner/a", half_hours(NINE, 4))
    room = make_actor("Location/room1", [NINE + 30, NINE + 90])
    found, total = find_candidates(make_request((doc,), (room,)))
    assert starts_of(found) == [NINE + 30, NINE + 90] and total == 2
    assert found[0].choices == (("Practitioner/a", ("a-570",)), ("Location/room1", ("room1-570",)))


def test_room_slot_longer_than_the_visit_covers_it_off_its_own_grid() -> None:
    doc = make_actor("Practitioner/a", [NINE + 30])
    room = make_actor("Location/room1", [NINE], length=120)
    found, _ = find_candidates(make_request((doc,), (room,)))
    assert found == [Candidate(NINE + 30, NINE + 60, (("Practitioner/a", ("a-570",)),
                                                      ("Location/room1", ("room1-540",))))]


def test_or_group_prefers_earlier_options_at_the_same_time_and_fills_gaps_with_later() -> None:
    first = make_actor("Practitioner/a", [NINE + 30])
    second = make_actor("Practitioner/b", [NINE, NINE + 30, NINE + 60])
    found, total = find_candidates(make_request((first, second)))
    assert [c.choices[0][0] for c in found] == [
        "Practitioner/b", "Practitioner/a", "Practitioner/b"]
    assert starts_of(found) == [NINE, NINE + 30, NINE + 60] and total == 3


def test_or_group_falls_back_when_the_preferred_actor_is_busy() -> None:
    first = make_actor("Practitioner/a", [NINE], busy=((NINE, NINE + 30),))
    second = make_actor("Practitioner/b", [NINE])
    found, _ = find_candidates(make_request((first, second)))
    assert found[0].choices[0][0] == "Practitioner/b"


def test_longer_visit_spans_consecutive_slots_but_not_a_gap() -> None:
    doc = make_actor("Practitioner/a", [NINE, NINE + 30, NINE + 90, NINE + 120])
    found, total = find_candidates(make_request((doc,), duration=60))
    assert found == [
        Candidate(NINE, NINE + 60, (("Practitioner/a", ("a-540", "a-570")),)),
        Candidate(NINE + 90, NINE + 150, (("Practitioner/a", ("a-630", "a-660")),)),
    ]
    assert total == 2


def test_consecutive_slots_of_different_schedules_do_not_chain() -> None:
    morning = make_actor("Practitioner/a", [NINE], schedule="s1")
    later = make_actor("Practitioner/a", [NINE + 30], schedule="s2")
    doc = ActorSlots("Practitioner/a", "Practitioner", morning.slots + later.slots)
    assert find_candidates(make_request((doc,), duration=60)) == ([], 0)


def test_buffers_widen_the_visit_against_busy_time_only() -> None:
    busy = ((NINE + 60, NINE + 90),)
    plain = make_actor("Practitioner/a", half_hours(NINE, 4), busy=busy)
    buffered = make_actor("Practitioner/a", half_hours(NINE, 4), busy=busy,
                          buffer_before=10, buffer_after=15)
    assert starts_of(find_candidates(make_request((plain,)))[0]) == [NINE, NINE + 30, NINE + 90]
    # 9:30 runs into the 10:00 visit with 15 minutes after; 10:30 needs 10 minutes before it.
    assert starts_of(find_candidates(make_request((buffered,)))[0]) == [NINE]


def test_room_buffers_widen_against_the_room_busy_time() -> None:
    doc = make_actor("Practitioner/a", half_hours(NINE, 2))
    room = make_actor("Location/room1", half_hours(NINE, 2), busy=((NINE + 60, NINE + 90),),
                      buffer_after=5)
    assert starts_of(find_candidates(make_request((doc,), (room,)))[0]) == [NINE]


def test_patient_appointments_remove_clashing_times_without_buffers() -> None:
    doc = make_actor("Practitioner/a", half_hours(NINE, 4), buffer_before=30, buffer_after=30)
    found, total = find_candidates(make_request((doc,), patient_busy=((NINE + 40, NINE + 60),)))
    assert starts_of(found) == [NINE, NINE + 60, NINE + 90] and total == 3


def test_emergency_slots_are_hidden_unless_allowed_or_released() -> None:
    doc = make_actor("Practitioner/a", [NINE, NINE + 30], emergency={NINE: NINE - 120})
    hidden = make_request((doc,), now=NINE - 180)
    assert starts_of(find_candidates(hidden)[0]) == [NINE + 30]
    allowed = make_request((doc,), now=NINE - 180, may_use_emergency=True)
    assert starts_of(find_candidates(allowed)[0]) == [NINE, NINE + 30]
    released = make_request((doc,), now=NINE - 120)
    assert starts_of(find_candidates(released)[0]) == [NINE, NINE + 30]


def test_an_emergency_slot_breaks_a_longer_run_for_ordinary_callers() -> None:
    doc = make_actor("Practitioner/a", [NINE, NINE + 30], emergency={NINE + 30: DAY})
    assert find_candidates(make_request((doc,), duration=60, now=0)) == ([], 0)
    assert find_candidates(make_request((doc,), duration=60, now=0,
                                        may_use_emergency=True))[1] == 1


def test_minimum_notice_and_horizon_narrow_the_window() -> None:
    doc = make_actor("Practitioner/a", half_hours(NINE, 6))
    found, total = find_candidates(make_request((doc,), earliest=NINE + 30, latest=NINE + 120))
    assert starts_of(found) == [NINE + 30, NINE + 60, NINE + 90] and total == 3


def test_request_window_bounds_start_and_end() -> None:
    doc = make_actor("Practitioner/a", half_hours(NINE, 6))
    found, _ = find_candidates(make_request((doc,), start=NINE + 1, end=NINE + 150,
                                            earliest=NINE - 60, latest=DAY))
    assert starts_of(found) == [NINE + 30, NINE + 60, NINE + 90, NINE + 120]


def test_count_limits_candidates_but_total_counts_every_start() -> None:
    first = make_actor("Practitioner/a", half_hours(NINE, 8))
    second = make_actor("Practitioner/b", half_hours(NINE, 8) + [DAY + NINE])
    found, total = find_candidates(make_request((first, second), count=3))
    assert starts_of(found) == [NINE, NINE + 30, NINE + 60]
    assert total == 9
    assert find_candidates(make_request((first, second), count=0)) == ([], 9)


def test_a_group_with_no_free_option_finds_nothing() -> None:
    doc = make_actor("Practitioner/a", half_hours(NINE, 4))
    device = make_actor("Device/d1", [DAY + NINE])
    assert find_candidates(make_request((doc,), (device,))) == ([], 0)


def test_non_positive_duration_is_refused() -> None:
    doc = make_actor("Practitioner/a", [NINE])
    with pytest.raises(ValueError):
        find_candidates(make_request((doc,), duration=0))
