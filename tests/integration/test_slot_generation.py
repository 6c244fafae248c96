"""Slot generation through the service, on SQLite and on MongoDB.

Dates are in March 2030 around the US spring-forward (Sunday 2030-03-10), with `now` passed in,
so the tests see exactly what a clinic would see that week.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.fhir.errors import InvalidRequest, ResourceNotFound, ValidationFailed
from fhir_server.fhir.search.model import StoreQuery
from fhir_server.services import resources
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_generation import ScheduleRules, generate_slots
from fhir_server.services.wiring import make_context
from fhir_server.store.protocol import Store
from tests.unit.scheduling.availability_factories import (
    WEEKDAYS,
    availability,
    available_time,
    break_time,
    make_schedule,
    slot_duration,
)

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2030, 3, 1, 12, tzinfo=UTC)
WEEK = {"start": "2030-03-06", "end": "2030-03-13"}  # Wed-Tue local, across the DST change
WEEK_START = datetime(2030, 3, 6, tzinfo=NEW_YORK)
WEEK_END = datetime(2030, 3, 13, tzinfo=NEW_YORK)
WEEK_DAYS = 5  # Wed, Thu, Fri, Mon, Tue
ECG = ("http://snomed.info/sct", "29303009")
CLINIC_DAY = (available_time(WEEKDAYS, "09:00:00", "17:00:00"), break_time("12:00:00", "13:00:00"))
PER_DAY = 14  # 30-minute slots: 6 before lunch, 8 after


@pytest.fixture
def ctx(store: Store) -> FhirContext:
    """The context with only the Schedule rules, so booking rules do not change the setup."""
    full = make_context(store, capability_dir=Path("capability"), base_url="http://test/fhir")
    return dataclasses.replace(full, rules={"Schedule": ScheduleRules()})


def clinic_schedule(*rules: dict, schedule_id: str = "sched-1", **fields: object) -> dict:
    schedule = make_schedule(availability(*rules), schedule_id=schedule_id)
    return {**schedule, "planningHorizon": WEEK, **fields}


async def put(ctx: FhirContext, resource: dict, *, now: datetime = NOW) -> None:
    await resources.update(ctx, resource["resourceType"], resource["id"], resource, now=now)


async def slots_of(ctx: FhirContext, schedule_id: str) -> list[dict]:
    page = await ctx.store.search(StoreQuery("Slot", limit=1000, with_total=False))
    found = [orjson.loads(s.body) for s in page.resources]
    return sorted((s for s in found if s["schedule"]["reference"] == f"Schedule/{schedule_id}"),
                  key=lambda s: s["start"])


def local(slot: dict) -> datetime:
    return datetime.fromisoformat(slot["start"].replace("Z", "+00:00")).astimezone(NEW_YORK)


async def test_creating_a_schedule_generates_its_horizon_at_nine_local_across_dst(ctx):
    await put(ctx, clinic_schedule(*CLINIC_DAY))

    slots = await slots_of(ctx, "sched-1")
    first_by_day = {}
    for slot in slots:
        first_by_day.setdefault(local(slot).date().isoformat(), slot["start"])
    assert len(slots) == WEEK_DAYS * PER_DAY
    assert all(s["status"] == "free" for s in slots)
    assert first_by_day["2030-03-08"] == "2030-03-08T14:00:00Z"  # Friday, EST
    assert first_by_day["2030-03-11"] == "2030-03-11T13:00:00Z"  # Monday, EDT
    assert {local(s).time().isoformat() for s in slots} >= {"09:00:00", "11:30:00", "13:00:00"}
    assert not [s for s in slots if local(s).hour == 12]
    get_fhir_model_class("Slot").model_validate(slots[0])


async def test_a_second_run_does_nothing(ctx):
    await put(ctx, clinic_schedule(*CLINIC_DAY))
    before = {s["id"]: s["meta"]["versionId"] for s in await slots_of(ctx, "sched-1")}

    report = await generate_slots(ctx, "sched-1", start=WEEK_START, end=WEEK_END, now=NOW)

    assert (report.created, report.updated, report.removed) == ([], [], [])
    assert sorted(report.kept) == sorted(before)
    assert {s["id"]: s["meta"]["versionId"] for s in await slots_of(ctx, "sched-1")} == before


async def test_new_slots_copy_codes_and_use_the_service_length(ctx):
    ecg = {"coding": [{"system": ECG[0], "code": ECG[1]}], "text": "ECG"}
    cardiology = {"coding": [{"system": "http://snomed.info/sct", "code": "394579002"}]}
    schedule = clinic_schedule(*CLINIC_DAY, slot_duration(60, ECG), serviceType=[ecg],
                               specialty=[cardiology])
    await put(ctx, schedule)

    slots = await slots_of(ctx, "sched-1")
    assert len(slots) == WEEK_DAYS * 7  # 3 before lunch, 4 after
    assert all(s["serviceType"] == [ecg] and s["specialty"] == [cardiology] for s in slots)
    assert local(slots[1]).hour - local(slots[0]).hour == 1


async def test_changed_rules_replace_free_slots_and_report_the_booked_one(ctx):
    bare = dataclasses.replace(ctx, rules={})  # write without regenerating, to see the report
    await put(ctx, clinic_schedule(*CLINIC_DAY))
    afternoon = next(s for s in await slots_of(ctx, "sched-1") if local(s).hour == 14)
    await put(bare, {**afternoon, "status": "busy"})
    appointment = {"resourceType": "Appointment", "id": "appt-1", "status": "booked",
                   "start": afternoon["start"], "end": afternoon["end"],
                   "slot": [{"reference": f"Slot/{afternoon['id']}"}],
                   "participant": [{"actor": {"reference": "Practitioner/d1"},
                                    "status": "accepted"}]}
    await put(bare, appointment)
    mornings = clinic_schedule(available_time(WEEKDAYS, "09:00:00", "12:00:00"))
    await put(bare, mornings)

    report = await generate_slots(ctx, "sched-1", start=WEEK_START, end=WEEK_END, now=NOW)

    slots = await slots_of(ctx, "sched-1")
    assert len(report.removed) == WEEK_DAYS * 8 - 1
    assert (report.created, report.updated) == ([], [])
    assert report.orphaned == [afternoon["id"]]
    assert report.affected_appointments == ["appt-1"]
    booked = next(s for s in slots if s["id"] == afternoon["id"])
    assert (booked["status"], booked["meta"]["versionId"]) == ("busy", "2")
    assert len(slots) == WEEK_DAYS * 6 + 1


async def test_a_put_regenerates_and_a_removed_slot_comes_back_when_the_rules_do(ctx):
    await put(ctx, clinic_schedule(*CLINIC_DAY))
    await put(ctx, clinic_schedule(available_time(WEEKDAYS, "09:00:00", "12:00:00")))
    assert len(await slots_of(ctx, "sched-1")) == WEEK_DAYS * 6

    await put(ctx, clinic_schedule(*CLINIC_DAY))

    slots = await slots_of(ctx, "sched-1")
    assert len(slots) == WEEK_DAYS * PER_DAY
    afternoon = next(s for s in slots if local(s).hour == 14)
    assert afternoon["meta"]["versionId"] == "3"  # created, deleted, created again


async def test_generation_starts_at_now_and_leaves_past_slots_alone(ctx):
    friday_noon = datetime(2030, 3, 8, 17, tzinfo=UTC)  # 12:00 EST

    await put(ctx, clinic_schedule(*CLINIC_DAY), now=friday_noon)

    slots = await slots_of(ctx, "sched-1")
    assert local(slots[0]).isoformat() == "2030-03-08T13:00:00-05:00"
    assert len(slots) == 8 + 2 * PER_DAY


async def test_r4_fallback_uses_the_practitioner_roles_available_time(ctx):
    role = {"resourceType": "PractitionerRole", "id": "role-1", "active": True,
            "availableTime": [{"daysOfWeek": ["mon", "wed"], "availableStartTime": "10:00:00",
                               "availableEndTime": "12:00:00"}]}
    await put(ctx, role)
    schedule = {**make_schedule(schedule_id="sched-r4"), "planningHorizon": WEEK,
                "actor": [{"reference": "Practitioner/d1"},
                          {"reference": "PractitionerRole/role-1"}]}
    await put(ctx, schedule)

    report = await generate_slots(ctx, "sched-r4", start=WEEK_START, end=WEEK_END, now=NOW)

    slots = await slots_of(ctx, "sched-r4")
    assert report.rules == "PractitionerRole/role-1" and report.created == []
    assert [local(s).strftime("%a %H:%M") for s in slots] == [
        "Wed 10:00", "Wed 10:30", "Wed 11:00", "Wed 11:30",
        "Mon 10:00", "Mon 10:30", "Mon 11:00", "Mon 11:30"]


async def test_r4_fallback_uses_a_rooms_hours_of_operation(ctx):
    room = {"resourceType": "Location", "id": "room-1", "status": "active", "name": "Room 1",
            "hoursOfOperation": [{"daysOfWeek": ["fri"], "openingTime": "08:00:00",
                                  "closingTime": "09:00:00"}]}
    await put(ctx, room)
    schedule = {**make_schedule(schedule_id="sched-room"), "planningHorizon": WEEK,
                "actor": [{"reference": "Location/room-1"}]}
    await put(ctx, schedule)

    assert [s["start"] for s in await slots_of(ctx, "sched-room")] == [
        "2030-03-08T13:00:00Z", "2030-03-08T13:30:00Z"]


async def test_a_schedule_without_rules_gets_an_empty_report(ctx):
    await put(ctx, {**make_schedule(schedule_id="sched-none"), "planningHorizon": WEEK})

    report = await generate_slots(ctx, "sched-none", start=WEEK_START, end=WEEK_END, now=NOW)

    assert report.rules is None
    assert (report.created, report.kept, report.orphaned) == ([], [], [])
    assert await slots_of(ctx, "sched-none") == []


async def test_unreadable_rules_refuse_the_schedule_write(ctx):
    broken = clinic_schedule(available_time(["funday"], "09:00:00", "17:00:00"))

    with pytest.raises(ValidationFailed):
        await put(ctx, broken)

    assert await ctx.store.read("Schedule", "sched-1") is None
    assert await slots_of(ctx, "sched-1") == []


async def test_unknown_schedule_and_empty_window_are_refused(ctx):
    with pytest.raises(ResourceNotFound):
        await generate_slots(ctx, "nope", start=WEEK_START, end=WEEK_END, now=NOW)
    with pytest.raises(InvalidRequest):
        await generate_slots(ctx, "nope", start=WEEK_END, end=WEEK_END, now=NOW)


async def test_without_a_horizon_the_next_28_days_are_generated(ctx):
    schedule = make_schedule(availability(available_time(["mon"], "09:00:00", "10:00:00")))

    await put(ctx, schedule)

    mondays = sorted({local(s).date().isoformat() for s in await slots_of(ctx, "sched-1")})
    assert mondays == ["2030-03-04", "2030-03-11", "2030-03-18", "2030-03-25"]
