"""Reconciling planned slots with stored ones: idempotent, and gentle with booked time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fhir_server.scheduling.availability import (
    SLOT_EMERGENCY_RESERVE_URL,
    AvailabilityRules,
    EmergencyWindow,
    PlannedSlot,
    WeeklyTime,
    plan_slots,
)
from fhir_server.scheduling.slot_plan import SlotChanges, reconcile_slots

NY = ZoneInfo("America/New_York")
MON_FRI = frozenset(range(5))
DAY_START, DAY_END = datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 1, 7, tzinfo=UTC)
NOW = datetime(2025, 1, 1, tzinfo=UTC)
CONSULT = {"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]}
TEMPLATE = {"serviceType": [CONSULT], "specialty": [{"text": "Family practice"}]}


def rules(start: int = 9, end: int = 12, **more: object) -> AvailabilityRules:
    return AvailabilityRules(time_zone=NY, available=(WeeklyTime(MON_FRI, time(start),
                                                                 time(end)),),
                             **more)  # type: ignore[arg-type]


def plan(the_rules: AvailabilityRules) -> list[PlannedSlot]:
    return plan_slots(the_rules, DAY_START, DAY_END)


def apply(stored: list[dict], changes: SlotChanges) -> list[dict]:
    """What a store would hold after the caller writes the changes."""
    updated = {slot["id"]: slot for slot in changes.update}
    kept = [updated.get(s["id"], s) for s in stored if s["id"] not in changes.remove]
    return kept + changes.create


def reconcile(planned: list[PlannedSlot], stored: list[dict], now: datetime = NOW) -> SlotChanges:
    return reconcile_slots("dr-a", planned, stored, now=now, template=TEMPLATE)


def with_status(slots: list[dict], status: str, *indexes: int) -> list[dict]:
    return [{**s, "status": status} if i in indexes else s for i, s in enumerate(slots)]


def test_first_run_creates_free_slots_with_deterministic_ids() -> None:
    changes = reconcile(plan(rules()), [])

    assert len(changes.create) == 6
    first = changes.create[0]
    assert first == {
        "resourceType": "Slot", "id": "dr-a-202501061400", **TEMPLATE,
        "schedule": {"reference": "Schedule/dr-a"}, "status": "free",
        "start": "2025-01-06T14:00:00Z", "end": "2025-01-06T14:30:00Z",
    }
    assert "comment" not in first
    assert (changes.remove, changes.keep, changes.orphaned, changes.update) == ([], [], [], [])


def test_second_run_changes_nothing() -> None:
    planned = plan(rules())
    stored = apply([], reconcile(planned, []))

    again = reconcile(planned, stored)

    assert (again.create, again.remove, again.update, again.orphaned) == ([], [], [], [])
    assert sorted(again.keep) == sorted(s["id"] for s in stored)


def test_stored_slots_are_matched_by_time_not_id() -> None:
    seeded = [{"resourceType": "Slot", "id": "slot-seed-1", **TEMPLATE,
               "schedule": {"reference": "Schedule/dr-a"}, "status": "free",
               "start": "2025-01-06T09:00:00-05:00", "end": "2025-01-06T09:30:00-05:00"}]

    changes = reconcile(plan(rules()), seeded)

    assert changes.keep == ["slot-seed-1"]
    assert "2025-01-06T14:00:00Z" not in [s["start"] for s in changes.create]


def test_rule_change_touches_only_free_future_slots_and_reports_booked_ones() -> None:
    stored = apply([], reconcile(plan(rules(9, 12)), []))
    stored = with_status(stored, "busy", 5)            # 11:30, booked
    stored = with_status(stored, "busy-tentative", 4)  # 11:00, held
    stored = with_status(stored, "busy-unavailable", 3)  # 10:30, blocked by staff

    changes = reconcile(plan(rules(9, 10)), stored)

    assert changes.remove == ["dr-a-202501061500"]
    assert sorted(changes.orphaned) == ["dr-a-202501061600", "dr-a-202501061630"]
    assert sorted(changes.keep) == ["dr-a-202501061400", "dr-a-202501061430",
                                    "dr-a-202501061530"]  # blocked by staff: not ours to drop
    assert changes.create == []


def test_past_free_slots_are_left_alone() -> None:
    stored = apply([], reconcile(plan(rules(9, 12)), []))
    now = datetime(2025, 1, 6, 15, 10, tzinfo=UTC)  # 10:10 local, 10:00 slot in progress

    changes = reconcile(plan(rules(9, 10)), stored, now=now)

    removed_starts = sorted(s["start"] for s in stored if s["id"] in changes.remove)
    assert removed_starts == ["2025-01-06T15:30:00Z", "2025-01-06T16:00:00Z",
                              "2025-01-06T16:30:00Z"]
    assert "dr-a-202501061500" in changes.keep


def test_no_slots_are_created_in_the_past() -> None:
    now = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)

    changes = reconcile(plan(rules(9, 12)), [], now=now)

    assert [s["start"] for s in changes.create][0] == "2025-01-06T15:00:00Z"
    assert len(changes.create) == 4


def test_new_slot_length_gets_new_ids_next_to_removed_ones() -> None:
    stored = apply([], reconcile(plan(rules(9, 10)), []))

    changes = reconcile(plan(rules(9, 10, slot_minutes_default=20)), stored)

    assert sorted(changes.remove) == ["dr-a-202501061400", "dr-a-202501061430"]
    created = [s["id"] for s in changes.create]
    assert created == ["dr-a-202501061400-2", "dr-a-202501061420", "dr-a-202501061440"]
    assert not set(created) & set(changes.remove)


def test_capacity_becomes_one_slot_per_seat() -> None:
    group = plan(rules(9, 10, slot_minutes_default=60, capacity=3))
    stored = apply([], reconcile(group, []))

    assert [s["id"] for s in stored] == ["dr-a-202501061400", "dr-a-202501061400-2",
                                         "dr-a-202501061400-3"]
    assert {s["start"] for s in stored} == {"2025-01-06T14:00:00Z"}

    stored = with_status(stored, "busy", 2)
    smaller = reconcile(plan(rules(9, 10, slot_minutes_default=60, capacity=2)), stored)
    assert smaller.remove == ["dr-a-202501061400-2"]
    assert sorted(smaller.keep) == ["dr-a-202501061400", "dr-a-202501061400-3"]


def test_emergency_slots_carry_the_release_extension() -> None:
    window = EmergencyWindow(MON_FRI, time(9), time(10), timedelta(hours=4))
    changes = reconcile(plan(rules(9, 11, emergency=(window,))), [])

    extensions = [s.get("extension") for s in changes.create]
    assert extensions[:2] == [
        [{"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": "2025-01-06T10:00:00Z"}],
        [{"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": "2025-01-06T10:30:00Z"}]]
    assert extensions[2:] == [None, None]


def test_changed_reserve_updates_free_slots_but_not_booked_ones() -> None:
    stored = apply([], reconcile(plan(rules(9, 10)), []))
    stored = with_status(stored, "busy", 1)
    window = EmergencyWindow(MON_FRI, time(9), time(10), timedelta(hours=1))

    changes = reconcile(plan(rules(9, 10, emergency=(window,))), stored)

    (updated,) = changes.update
    assert updated["id"] == "dr-a-202501061400"
    assert updated["extension"] == [{"url": SLOT_EMERGENCY_RESERVE_URL,
                                     "valueDateTime": "2025-01-06T13:00:00Z"}]
    assert changes.keep == ["dr-a-202501061430"]
    again = reconcile(plan(rules(9, 10, emergency=(window,))), apply(stored, changes))
    assert again.update == [] and again.create == []


def test_every_stored_slot_is_accounted_for_once() -> None:
    stored = apply([], reconcile(plan(rules(9, 12)), []))
    stored = with_status(stored, "busy", 0, 5)
    stored = with_status(stored, "entered-in-error", 2)
    now = datetime(2025, 1, 6, 14, 45, tzinfo=UTC)

    changes = reconcile(plan(rules(10, 11)), stored, now=now)

    buckets = [changes.keep, changes.remove, changes.orphaned,
               [s["id"] for s in changes.update]]
    listed = [slot_id for bucket in buckets for slot_id in bucket]
    assert sorted(listed) == sorted(s["id"] for s in stored)
    assert changes.orphaned == ["dr-a-202501061630"]  # busy and future, no longer planned
    assert "dr-a-202501061400" in changes.keep         # busy but already past


def test_created_slots_are_valid_r4_slots_with_short_ids() -> None:
    from fhir.resources.R4B.slot import Slot

    window = EmergencyWindow(MON_FRI, time(9), time(10), timedelta(hours=4))
    long_id = "schedule-" + "x" * 55
    changes = reconcile_slots(long_id, plan(rules(9, 10, emergency=(window,), capacity=2)), [],
                              now=NOW, template=TEMPLATE)

    for slot in changes.create:
        Slot.model_validate(slot)
        assert len(slot["id"]) <= 64
        assert slot["schedule"] == {"reference": f"Schedule/{long_id}"}
    assert len({s["id"] for s in changes.create}) == 4
