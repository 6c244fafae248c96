"""Reading availability rules: our Schedule extension, the R4 fallbacks and the profiles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.structuredefinition import StructureDefinition

from fhir_server.fhir.errors import ValidationFailed
from fhir_server.scheduling.availability import (
    AVAILABILITY_URL,
    SLOT_EMERGENCY_RESERVE_URL,
    NotAvailable,
    WeeklyTime,
    bookable_window,
    rules_from_location,
    rules_from_practitioner_role,
    rules_from_schedule,
    schedule_time_zone,
)
from tests.unit.scheduling.availability_factories import (
    WEEKDAYS,
    availability,
    available_time,
    break_time,
    emergency,
    make_schedule,
    minutes,
    nested,
    slot_duration,
    sub,
    time_off,
)

PROFILES = Path(__file__).resolve().parents[3] / "profiles"
NY = ZoneInfo("America/New_York")
SNOMED = "http://snomed.info/sct"


def full_extension() -> dict:
    return availability(
        available_time(WEEKDAYS, "09:00:00", "17:00:00"),
        break_time("12:00:00", "13:00:00"),
        time_off("2024-12-25", "2024-12-26", "Christmas"),
        slot_duration(20),
        slot_duration(60, (SNOMED, "29303009")),
        sub("bufferBefore", valueDuration=minutes(5)),
        sub("bufferAfter", valueDuration=minutes(10)),
        sub("alignment", valuePositiveInt=15),
        sub("capacity", valuePositiveInt=6),
        emergency("16:00:00", "17:00:00", minutes(2, "h"), ["mon"]),
        sub("minimumNotice", valueDuration=minutes(1, "d")),
        sub("bookingHorizon", valueDuration=minutes(12, "wk")),
    )


def test_every_sub_extension_is_read() -> None:
    rules = rules_from_schedule(make_schedule(full_extension()))

    assert rules is not None
    assert rules.time_zone == NY
    assert rules.available == (WeeklyTime(frozenset(range(5)), time(9), time(17)),)
    assert rules.breaks == (WeeklyTime(frozenset(range(7)), time(12), time(13)),)
    assert rules.not_available == (NotAvailable(
        datetime(2024, 12, 25, tzinfo=NY), datetime(2024, 12, 27, tzinfo=NY), "Christmas"),)
    assert rules.slot_minutes_default == 20
    assert rules.slot_minutes_by_service == {(SNOMED, "29303009"): 60}
    assert (rules.buffer_before, rules.buffer_after, rules.alignment) == (5, 10, 15)
    assert rules.capacity == 6
    assert [(w.days, w.start, w.end, w.release_before) for w in rules.emergency] == [
        (frozenset({0}), time(16), time(17), timedelta(hours=2))]
    assert rules.minimum_notice == timedelta(days=1)
    assert rules.booking_horizon == timedelta(weeks=12)


def test_defaults_when_only_zone_and_hours_are_given() -> None:
    rules = rules_from_schedule(make_schedule(availability(
        available_time(["sat"], "08:00:00", "12:00:00"), zone="Asia/Kolkata")))

    assert rules is not None
    assert (rules.slot_minutes_default, rules.capacity, rules.alignment) == (30, 1, None)
    assert (rules.buffer_before, rules.buffer_after) == (0, 0)
    assert rules.minimum_notice is None and rules.booking_horizon is None


def test_all_day_is_midnight_to_midnight() -> None:
    all_day = nested("availableTime", sub("daysOfWeek", valueCode="sun"),
                     sub("allDay", valueBoolean=True))
    rules = rules_from_schedule(make_schedule(availability(all_day)))

    assert rules is not None
    assert rules.available == (WeeklyTime(frozenset({6}), time(0), time(0)),)


def test_no_extension_means_no_rules() -> None:
    assert rules_from_schedule(make_schedule()) is None


def test_slot_length_follows_the_service_coding() -> None:
    rules = rules_from_schedule(make_schedule(full_extension()))

    assert rules is not None
    assert rules.slot_minutes_for([("http://other", "x"), (SNOMED, "29303009")]) == 60
    assert rules.slot_minutes_for([(SNOMED, "11429006")]) == 20
    assert rules.slot_minutes_for([]) == 20


def bad(index: int, replacement: dict) -> dict:
    """The full extension with sub-extension `index` replaced."""
    extension = full_extension()
    extension["extension"][index] = replacement
    return extension


BAD_CASES = {
    "unknown zone": (bad(0, sub("timeZone", valueCode="Mars/Olympus")),
                     "Schedule.extension[1].extension[0]", "Mars/Olympus"),
    "bad time": (bad(1, available_time(WEEKDAYS, "9:00", "17:00:00")),
                 "Schedule.extension[1].extension[1].extension[5]", "9:00"),
    "hour 24": (bad(2, break_time("12:00:00", "24:00:00")),
                "Schedule.extension[1].extension[2].extension[1]", "24:00:00"),
    "seconds": (bad(2, break_time("12:00:30", "13:00:00")),
                "Schedule.extension[1].extension[2].extension[0]", "whole minute"),
    "bad day": (bad(1, available_time(["monday"], "09:00:00", "17:00:00")),
                "Schedule.extension[1].extension[1].extension[0]", "monday"),
    "bad unit": (bad(6, sub("bufferBefore", valueDuration=minutes(5, "mo"))),
                 "Schedule.extension[1].extension[6]", "'mo'"),
    "fractional minutes": (bad(7, sub("bufferAfter", valueDuration=minutes(1.5))),
                           "Schedule.extension[1].extension[7]", "whole number of minutes"),
    "negative": (bad(12, sub("bookingHorizon", valueDuration=minutes(-1, "d"))),
                 "Schedule.extension[1].extension[12]", "non-negative"),
    "zero slot": (bad(4, slot_duration(0)),
                  "Schedule.extension[1].extension[4].extension[0]", "longer than zero"),
    "zero capacity": (bad(9, sub("capacity", valuePositiveInt=0)),
                      "Schedule.extension[1].extension[9]", "valuePositiveInt"),
    "wrong value type": (bad(8, sub("alignment", valueInteger=15)),
                         "Schedule.extension[1].extension[8]", "valuePositiveInt"),
    "unknown sub-extension": (bad(8, sub("slotLength", valuePositiveInt=15)),
                              "Schedule.extension[1].extension[8]", "slotLength"),
    "repeated": (bad(8, sub("capacity", valuePositiveInt=2)),
                     "Schedule.extension[1].extension[9]", "at most 1"),
    "bad period": (bad(3, time_off("2024-12-25T10:00:00", "2024-12-26")),
                   "Schedule.extension[1].extension[3].extension[1].start", "time zone"),
    "reversed period": (bad(3, time_off("2024-12-26", "2024-12-24")),
                        "Schedule.extension[1].extension[3].extension[1]", "before it starts"),
    "start without end": (bad(1, nested("availableTime", sub("daysOfWeek", valueCode="mon"),
                                        sub("availableStartTime", valueTime="09:00:00"))),
                          "Schedule.extension[1].extension[1]", "availableEndTime"),
    "two defaults": (bad(5, slot_duration(45)),
                     "Schedule.extension[1].extension[5]", "only one slotDuration"),
}


@pytest.mark.parametrize("extension, expression, words", BAD_CASES.values(), ids=BAD_CASES)
def test_bad_extension_names_the_element(extension: dict, expression: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        rules_from_schedule(make_schedule(extension))

    (issue,) = caught.value.issues
    assert issue.expression == (expression,)
    assert words in issue.diagnostics


def test_missing_time_zone_is_required() -> None:
    extension = {"url": AVAILABILITY_URL,
                 "extension": [available_time(WEEKDAYS, "09:00:00", "17:00:00")]}
    with pytest.raises(ValidationFailed) as caught:
        rules_from_schedule(make_schedule(extension))

    assert caught.value.issues[0].expression == ("Schedule.extension[1]",)
    assert caught.value.issues[0].code == "required"
    assert "timeZone" in str(caught.value)


def test_two_availability_extensions_are_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        rules_from_schedule(make_schedule(full_extension(), full_extension()))

    assert caught.value.issues[0].expression == ("Schedule.extension[2]",)


def test_time_zone_from_either_extension() -> None:
    ours = make_schedule(availability(zone="Europe/Berlin"))
    r4_only = make_schedule()
    neither = {"resourceType": "Schedule", "actor": []}

    assert schedule_time_zone(ours) == ZoneInfo("Europe/Berlin")
    assert schedule_time_zone(r4_only) == NY
    assert schedule_time_zone(neither) is None


def test_bad_r4_time_zone_is_refused() -> None:
    schedule = {"resourceType": "Schedule",
                "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/timezone",
                               "valueCode": "Eastern"}]}
    with pytest.raises(ValidationFailed) as caught:
        schedule_time_zone(schedule)

    assert caught.value.issues[0].expression == ("Schedule.extension[0]",)


def test_practitioner_role_fallback() -> None:
    role = {
        "resourceType": "PractitionerRole",
        "availableTime": [
            {"daysOfWeek": ["mon", "wed"], "availableStartTime": "08:30:00",
             "availableEndTime": "12:30:00"},
            {"daysOfWeek": ["fri"], "allDay": True},
        ],
        "notAvailable": [
            {"description": "Conference", "during": {"start": "2025-05-05", "end": "2025-05-07"}},
            {"description": "Sometimes in August"},
        ],
    }
    rules = rules_from_practitioner_role(role, time_zone=NY, slot_minutes=15)

    assert rules.available == (WeeklyTime(frozenset({0, 2}), time(8, 30), time(12, 30)),
                               WeeklyTime(frozenset({4}), time(0), time(0)))
    assert rules.not_available == (NotAvailable(
        datetime(2025, 5, 5, tzinfo=NY), datetime(2025, 5, 8, tzinfo=NY), "Conference"),)
    assert rules.slot_minutes_default == 15


def test_practitioner_role_bad_time_names_the_element() -> None:
    role = {"availableTime": [{"daysOfWeek": ["mon"], "availableStartTime": "8am"}]}
    with pytest.raises(ValidationFailed) as caught:
        rules_from_practitioner_role(role, time_zone=NY)

    assert caught.value.issues[0].expression == (
        "PractitionerRole.availableTime[0].availableStartTime",)


def test_location_fallback() -> None:
    location = {"resourceType": "Location", "hoursOfOperation": [
        {"daysOfWeek": ["mon", "tue"], "openingTime": "07:00:00", "closingTime": "19:00:00"},
        {"openingTime": "10:00:00", "closingTime": "14:00:00"},
    ]}
    rules = rules_from_location(location, time_zone=NY)

    assert rules.available == (WeeklyTime(frozenset({0, 1}), time(7), time(19)),
                               WeeklyTime(frozenset(range(7)), time(10), time(14)))
    assert rules.slot_minutes_default == 30


def test_bookable_window_applies_notice_and_horizon() -> None:
    rules = rules_from_schedule(make_schedule(full_extension()))
    now = datetime(2025, 1, 6, 12, tzinfo=UTC)

    assert rules is not None
    assert bookable_window(rules, now) == (now + timedelta(days=1), now + timedelta(weeks=12))


@pytest.mark.parametrize("name", ["schedule-availability", "slot-emergency-reserve"])
def test_profiles_are_valid_structure_definitions(name: str) -> None:
    raw = json.loads((PROFILES / f"StructureDefinition-{name}.json").read_text())
    definition = StructureDefinition.model_validate(raw)

    assert definition.id == name
    assert definition.url == f"http://fhir-scheduler.org/fhir/StructureDefinition/{name}"
    assert (definition.kind, definition.type, definition.derivation) == (
        "complex-type", "Extension", "constraint")
    assert definition.baseDefinition == "http://hl7.org/fhir/StructureDefinition/Extension"


def test_profile_declares_exactly_the_sub_extensions_the_parser_reads() -> None:
    raw = json.loads((PROFILES / "StructureDefinition-schedule-availability.json").read_text())
    elements = raw["differential"]["element"]
    top = {e["sliceName"]: e for e in elements if e["id"].count(":") == 1 and "sliceName" in e}
    value_types = {e["id"].split(":")[1].removesuffix(".value[x]"): e["type"][0]["code"]
                   for e in elements if e["id"].count(":") == 1 and e["id"].endswith("value[x]")
                   and "type" in e}

    assert raw["context"] == [{"type": "element", "expression": "Schedule"}]
    assert set(top) == {"timeZone", "availableTime", "break", "notAvailableTime", "slotDuration",
                        "bufferBefore", "bufferAfter", "alignment", "capacity",
                        "emergencyReserve", "minimumNotice", "bookingHorizon"}
    assert (top["timeZone"]["min"], top["timeZone"]["max"]) == (1, "1")
    assert value_types == {"timeZone": "code", "bufferBefore": "Duration",
                           "bufferAfter": "Duration", "alignment": "positiveInt",
                           "capacity": "positiveInt", "minimumNotice": "Duration",
                           "bookingHorizon": "Duration"}


def test_reserve_profile_is_a_date_time_on_slot() -> None:
    raw = json.loads((PROFILES / "StructureDefinition-slot-emergency-reserve.json").read_text())
    value = next(e for e in raw["differential"]["element"] if e["id"] == "Extension.value[x]")
    url = next(e for e in raw["differential"]["element"] if e["id"] == "Extension.url")

    assert raw["context"] == [{"type": "element", "expression": "Slot"}]
    assert value["type"] == [{"code": "dateTime"}]
    assert url["fixedUri"] == SLOT_EMERGENCY_RESERVE_URL
