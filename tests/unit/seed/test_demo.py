"""The demo data is valid FHIR R4, self-contained, and its generated slots follow each
Schedule's availability rules, right across DST changes."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL, rules_from_schedule
from fhir_server.seed.demo import demo_resources

NEW_YORK = ZoneInfo("America/New_York")
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
LOCAL_REFERENCE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})")
A_FRIDAY = date(2026, 3, 13)


def by_type(items: list[dict], resource_type: str) -> list[dict]:
    return [item for item in items if item["resourceType"] == resource_type]


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def references(node: object) -> list[str]:
    """Every `Reference.reference` string anywhere inside `node`."""
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [ref for value in node.values() for ref in references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in references(value)]
    return []


def values_at(node: object, path: list[str]) -> list[object]:
    """The values at a FHIR element path (without the type name), flattening lists."""
    if isinstance(node, list):
        return [value for item in node for value in values_at(item, path)]
    if not path:
        return [node]
    if isinstance(node, dict) and path[0] in node:
        return values_at(node[path[0]], path[1:])
    return []


@pytest.fixture(scope="module")
def demo() -> list[dict]:
    return demo_resources(A_FRIDAY)


def test_counts_per_type_match_the_clinic_description(demo):
    counts = Counter(item["resourceType"] for item in demo)

    assert counts == {
        "Organization": 1,
        "Location": 3,  # the building and two rooms
        "Practitioner": 5,  # three doctors, the front desk and the administrator
        "PractitionerRole": 5,
        "Device": 1,
        "HealthcareService": 2,
        "Patient": 4,
        "Schedule": 6,  # three practitioners, two rooms, one device
        # 20 working days x (4 schedules x 14 half hours + 12 with a 5-min buffer + 7 ECG hours)
        "Slot": 20 * (4 * 14 + 12 + 7),
        "Appointment": 2,
    }


def test_ids_are_valid_and_unique(demo):
    ids = [item["id"] for item in demo]

    assert all(FHIR_ID.fullmatch(resource_id) for resource_id in ids)
    assert len(ids) == len(set(ids))


def test_the_documented_ids_exist(demo):
    keys = {f"{item['resourceType']}/{item['id']}" for item in demo}

    assert {"Organization/riverside-clinic", "Practitioner/dr-amara-okafor",
            "Patient/maria-garcia", "Schedule/schedule-dr-amara-okafor",
            "Slot/schedule-dr-amara-okafor-202603131300"} <= keys  # 09:00 EDT


def test_every_reference_resolves_inside_the_set(demo):
    keys = {f"{item['resourceType']}/{item['id']}" for item in demo}
    found = references(demo)

    assert len(found) > 200  # the walk really sees the slots' schedule references
    for reference in found:
        assert LOCAL_REFERENCE.fullmatch(reference), reference
        assert reference in keys, reference


def test_same_day_gives_the_same_resources():
    assert demo_resources(A_FRIDAY) == demo_resources(A_FRIDAY)


@pytest.mark.parametrize(
    ("today", "before_utc_hour", "after_utc_hour"),
    [
        (date(2026, 3, 6), 14, 13),  # EST -> EDT on Sunday 2026-03-08
        (date(2026, 10, 30), 13, 14),  # EDT -> EST on Sunday 2026-11-01
    ],
)
def test_first_slot_is_at_nine_local_on_both_sides_of_a_dst_change(
    today, before_utc_hour, after_utc_hour
):
    slots = by_type(demo_resources(today), "Slot")
    first_start: dict[str, str] = {}
    for slot in sorted(slots, key=lambda s: s["start"]):
        if slot["schedule"]["reference"] == "Schedule/schedule-dr-amara-okafor":
            first_start.setdefault(slot["start"][:10], slot["start"])
    monday = today + timedelta(days=3)

    assert first_start[f"{today}"] == f"{today}T{before_utc_hour:02d}:00:00Z"
    assert first_start[f"{monday}"] == f"{monday}T{after_utc_hour:02d}:00:00Z"


def local_times(first: time, step: int, count: int) -> set[time]:
    start = first.hour * 60 + first.minute
    return {time((start + k * step) // 60, (start + k * step) % 60) for k in range(count)}


HALF_HOURS = local_times(time(9), 30, 6) | local_times(time(13), 30, 8)
SLOT_SHAPES = {  # schedule id: (local starts, minutes long)
    "schedule-dr-amara-okafor": (HALF_HOURS, 30),
    "schedule-dr-daniel-reyes": (HALF_HOURS, 30),
    "schedule-dr-mei-lin-chen": (local_times(time(9), 35, 5) | local_times(time(13), 35, 7), 30),
    "schedule-exam-room-1": (HALF_HOURS, 30),
    "schedule-ecg-room": (HALF_HOURS, 30),
    "schedule-ecg-machine-1": (local_times(time(9), 60, 3) | local_times(time(13), 60, 4), 60),
}


@pytest.mark.parametrize("today", [date(2026, 3, 6), date(2026, 10, 30), date(2026, 3, 7)])
def test_slots_follow_each_schedules_hours_lengths_and_buffers(today):
    slots = by_type(demo_resources(today), "Slot")

    local_days: dict[str, set[date]] = {}
    for slot in slots:
        schedule_id = slot["schedule"]["reference"].removeprefix("Schedule/")
        starts, minutes = SLOT_SHAPES[schedule_id]
        start = parse_instant(slot["start"]).astimezone(NEW_YORK)
        end = parse_instant(slot["end"]).astimezone(NEW_YORK)
        local_days.setdefault(schedule_id, set()).add(start.date())
        assert start.weekday() < 5
        assert start.time() in starts, (schedule_id, start)
        assert end - start == timedelta(minutes=minutes)
        assert today <= start.date() < today + timedelta(days=28)
    assert {len(days) for days in local_days.values()} == {20}
    assert set(local_days) == set(SLOT_SHAPES)


def test_every_schedule_carries_the_clinic_rules(demo):
    for schedule in by_type(demo, "Schedule"):
        rules = rules_from_schedule(schedule)
        assert rules is not None, schedule["id"]
        assert rules.time_zone == NEW_YORK
        assert rules.minimum_notice == timedelta(hours=2)
        assert rules.booking_horizon == timedelta(days=60)


def test_emergency_hour_slots_are_reserved_until_two_hours_before(demo):
    reserved = [s for s in by_type(demo, "Slot") if "extension" in s]

    assert reserved
    assert len(reserved) == 20 * 2  # 16:00 and 16:30 on each working day
    for slot in reserved:
        (extension,) = slot["extension"]
        release = parse_instant(extension["valueDateTime"])
        assert extension["url"] == SLOT_EMERGENCY_RESERVE_URL
        assert slot["schedule"]["reference"] == "Schedule/schedule-dr-daniel-reyes"
        assert parse_instant(slot["start"]).astimezone(NEW_YORK).hour == 16
        assert parse_instant(slot["start"]) - release == timedelta(hours=2)


def test_slots_copy_service_type_and_specialty_and_fit_the_planning_horizon(demo):
    schedules = {item["id"]: item for item in by_type(demo, "Schedule")}

    for slot in by_type(demo, "Slot"):
        schedule = schedules[slot["schedule"]["reference"].removeprefix("Schedule/")]
        horizon = schedule["planningHorizon"]
        assert slot.get("serviceType") == schedule.get("serviceType")
        assert slot.get("specialty") == schedule.get("specialty")
        assert parse_instant(horizon["start"]) <= parse_instant(slot["start"])
        assert parse_instant(slot["end"]) <= parse_instant(horizon["end"])


def test_planning_horizon_spans_four_weeks_from_local_midnight(demo):
    for schedule in by_type(demo, "Schedule"):
        start = parse_instant(schedule["planningHorizon"]["start"])
        end = parse_instant(schedule["planningHorizon"]["end"])
        assert schedule["active"] is True
        assert start.astimezone(NEW_YORK) == datetime(2026, 3, 13, tzinfo=NEW_YORK)
        assert end.astimezone(NEW_YORK) == datetime(2026, 4, 10, tzinfo=NEW_YORK)
        assert start.tzinfo == UTC and schedule["planningHorizon"]["start"].endswith("Z")


def test_booked_appointments_hold_busy_slots_and_only_those(demo):
    slots = {item["id"]: item for item in by_type(demo, "Slot")}
    appointments = by_type(demo, "Appointment")
    booked_slot_ids = {
        ref["reference"].removeprefix("Slot/") for appt in appointments for ref in appt["slot"]
    }

    assert {s["id"] for s in slots.values() if s["status"] == "busy"} == booked_slot_ids
    assert len(booked_slot_ids) == 2
    # Slots are generated from now on, so the bookings are on the working days after today.
    assert sorted(parse_instant(a["start"]).astimezone(NEW_YORK).date()
                  for a in appointments) == [date(2026, 3, 16), date(2026, 3, 17)]
    for appt in appointments:
        (slot,) = (slots[ref["reference"].removeprefix("Slot/")] for ref in appt["slot"])
        assert appt["status"] == "booked"
        assert (appt["start"], appt["end"]) == (slot["start"], slot["end"])
        actor_types = [p["actor"]["reference"].split("/")[0] for p in appt["participant"]]
        assert actor_types == ["Patient", "Practitioner", "Location"]
        assert all(p["status"] == "accepted" and p["required"] == "required"
                   for p in appt["participant"])


def test_each_booking_is_on_its_practitioners_own_schedule(demo):
    schedules = {item["id"]: item for item in by_type(demo, "Schedule")}
    slots = {item["id"]: item for item in by_type(demo, "Slot")}

    for appt in by_type(demo, "Appointment"):
        slot = slots[appt["slot"][0]["reference"].removeprefix("Slot/")]
        schedule = schedules[slot["schedule"]["reference"].removeprefix("Schedule/")]
        practitioner = appt["participant"][1]["actor"]["reference"]
        assert practitioner in {actor["reference"] for actor in schedule["actor"]}


def test_practitioners_have_valid_npis(demo):
    def luhn_ok(npi: str) -> bool:
        digits = [int(d) for d in "80840" + npi]
        total = 0
        for position, digit in enumerate(reversed(digits)):
            doubled = digit * 2 if position % 2 else digit
            total += doubled - 9 if doubled > 9 else doubled
        return total % 10 == 0

    clinicians = [p for p in by_type(demo, "Practitioner") if p["id"].startswith("dr-")]
    assert len(clinicians) == 3  # the front desk and the administrator have no NPI
    for practitioner in clinicians:
        (npi,) = [i["value"] for i in practitioner["identifier"]
                  if i["system"] == "http://hl7.org/fhir/sid/us-npi"]
        assert re.fullmatch(r"[12]\d{9}", npi) and luhn_ok(npi), npi


def test_every_resource_validates_against_the_r4b_models(demo):
    for item in demo:
        get_fhir_model_class(item["resourceType"]).model_validate(item)


def test_codes_are_in_their_required_value_sets(demo):
    definitions = resources.files("fhir_server.fhir") / "definitions"
    structures = json.loads((definitions / "structure-definitions.json").read_text())
    value_sets = json.loads((definitions / "required-valuesets.json").read_text())
    types_present = {item["resourceType"] for item in demo}
    checked = 0

    for structure in structures:
        if structure["id"] not in types_present:
            continue
        for element in structure["snapshot"]["element"]:
            binding = element.get("binding", {})
            if binding.get("strength") != "required":
                continue
            allowed = {c["code"] for c in value_sets[binding["valueSet"].split("|")[0]]["codes"]}
            path = element["path"].split(".")[1:]
            for item in by_type(demo, structure["id"]):
                for code in values_at(item, path):
                    assert code in allowed, (item["id"], element["path"], code)
                    checked += 1
    assert checked > 200  # every Slot.status at least
