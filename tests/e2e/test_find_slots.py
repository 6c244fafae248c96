"""`Slot/$find-slots` over HTTP on both stores: which times are offered, and why not others."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL
from tests.e2e.checks import expressions, outcome_issues
from tests.e2e.search_factories import (
    CARDIOLOGY,
    CONSULTATION,
    ECG,
    appointment,
    concept,
    location,
    practitioner,
    put,
    schedule,
    slot,
)
from tests.e2e.tokens import bearer, mint
from tests.unit.scheduling.availability_factories import availability, minutes, sub

DAY = "2030-03-11"  # a Monday, years ahead of any test run's clock
HOLD_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/slot-hold"
WINDOW = {"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T23:00:00Z"}


def at(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00Z"


def half_hours(schedule_id: str, *starts: str, length: int = 30,
               **extra: Any) -> list[dict[str, Any]]:
    """One free Slot of `length` minutes at each `HH:MM`, id `<schedule>-<HHMM>`."""
    slots = []
    for hhmm in starts:
        begin = datetime.fromisoformat(at(hhmm))
        end = (begin + timedelta(minutes=length)).strftime("%H:%M")
        slots.append(slot(f"{schedule_id}-{hhmm.replace(':', '')}", schedule_id, at(hhmm),
                          at(end), **extra))
    return slots


async def doctor(client: httpx.AsyncClient, name: str, *starts: str,
                 **schedule_extra: Any) -> None:
    """Practitioner `name` with Schedule `s-<name>` and free half-hour slots at `starts`."""
    await put(client, practitioner(name, name.title()),
              schedule(f"s-{name}", f"Practitioner/{name}", **schedule_extra),
              *half_hours(f"s-{name}", *starts))


async def find(client: httpx.AsyncClient, *params: tuple[str, str],
               path: str = "Slot/$find-slots", window: bool = True,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    query = [*(WINDOW.items() if window else ()), *params]
    response = await client.get(path, params=query, headers=headers)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle


def proposals(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def starts(bundle: dict[str, Any]) -> list[str]:
    """`HH:MM` of each proposal, in Bundle order."""
    return [p["start"][11:16] for p in proposals(bundle)]


def actors_of(proposal: dict[str, Any]) -> list[str]:
    return [p["actor"]["reference"] for p in proposal["participant"]]


def slots_of(proposal: dict[str, Any]) -> list[str]:
    return [s["reference"] for s in proposal["slot"]]


async def test_a_practitioners_free_slots_are_proposed_in_time_order(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "10:00", "09:00", "09:30")
    bundle = await find(client, ("practitioner", "Practitioner/ada"))
    assert starts(bundle) == ["09:00", "09:30", "10:00"] and bundle["total"] == 3
    first = proposals(bundle)[0]
    assert first["status"] == "proposed"
    assert (first["start"], first["end"], first["minutesDuration"]) == (
        at("09:00"), at("09:30"), 30)
    assert first["slot"] == [{"reference": "Slot/s-ada-0900"}]
    assert first["participant"] == [{"actor": {"reference": "Practitioner/ada"},
                                     "required": "required", "status": "needs-action"}]


async def test_busy_and_inactive_time_is_not_offered(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00")
    await put(client, *half_hours("s-ada", "09:30", status="busy"),
              practitioner("bo", "Bo"), schedule("s-bo", "Practitioner/bo", active=False),
              *half_hours("s-bo", "09:00"))
    assert starts(await find(client, ("practitioner", "Practitioner/ada"))) == ["09:00"]
    assert starts(await find(client, ("practitioner", "Practitioner/bo"))) == []


async def test_a_booked_appointment_blocks_its_time_and_a_cancelled_one_does_not(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00")
    cancelled = appointment("a2", "Practitioner/ada", start=at("10:00"), end=at("10:30"))
    await put(client,
              appointment("a1", "Practitioner/ada", start=at("09:30"), end=at("10:00")),
              cancelled, cancelled | {"status": "cancelled"})
    assert starts(await find(client, ("practitioner", "Practitioner/ada"))) == ["09:00", "10:00"]


async def test_practitioner_and_room_are_offered_only_when_both_are_free(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00", "10:30")
    await put(client, location("room1", "Exam room 1"), schedule("s-room1", "Location/room1"),
              *half_hours("s-room1", "09:00", "10:30"), *half_hours("s-room1", "09:30",
                                                                  status="busy"))
    bundle = await find(client, ("practitioner", "Practitioner/ada"),
                        ("location-reference", "Location/room1"))
    assert starts(bundle) == ["09:00", "10:30"]
    first = proposals(bundle)[0]
    assert actors_of(first) == ["Practitioner/ada", "Location/room1"]
    assert slots_of(first) == ["Slot/s-ada-0900", "Slot/s-room1-0900"]


async def test_repeated_practitioners_are_alternatives_in_order_of_preference(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30")
    await doctor(client, "bo", "09:30", "10:00")
    bundle = await find(client, ("practitioner", "Practitioner/ada"),
                        ("practitioner", "Practitioner/bo"))
    assert starts(bundle) == ["09:00", "09:30", "10:00"]
    assert [actors_of(p) for p in proposals(bundle)] == [
        ["Practitioner/ada"], ["Practitioner/ada"], ["Practitioner/bo"]]
    reversed_order = await find(client, ("practitioner", "Practitioner/bo,Practitioner/ada"))
    assert actors_of(proposals(reversed_order)[1]) == ["Practitioner/bo"]


async def test_a_long_visit_needs_consecutive_slots(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:30", "11:30", "12:00")
    bundle = await find(client, ("practitioner", "Practitioner/ada"), ("duration", "60"))
    assert starts(bundle) == ["09:00", "11:30"]
    first = proposals(bundle)[0]
    assert (first["end"], first["minutesDuration"]) == (at("10:00"), 60)
    assert slots_of(first) == ["Slot/s-ada-0900", "Slot/s-ada-0930"]


async def test_a_stay_of_several_days_that_began_earlier_blocks_until_it_ends(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00")
    await doctor(client, "bo", "09:00", "09:30")
    # Inpatient stays begun two days before the searched day: ada's ends at 09:30, bo's
    # lasts three days.
    await put(client,
              appointment("ward-ada", "Practitioner/ada", "Patient/pat1",
                          start="2030-03-09T09:30:00Z", end=at("09:30")),
              appointment("ward-bo", "Practitioner/bo", "Patient/pat2",
                          start="2030-03-09T08:00:00Z", end="2030-03-12T08:00:00Z"))
    assert starts(await find(client, ("practitioner", "Practitioner/ada"))) == ["09:30", "10:00"]
    assert starts(await find(client, ("practitioner", "Practitioner/bo"))) == []


async def test_the_patients_own_appointment_excludes_its_time(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00")
    await put(client, appointment("elsewhere", "Patient/pat1", "Practitioner/other",
                                  start=at("09:30"), end=at("10:00")))
    bundle = await find(client, ("practitioner", "Practitioner/ada"),
                        ("patient-reference", "Patient/pat1"))
    assert starts(bundle) == ["09:00", "10:00"]
    assert actors_of(proposals(bundle)[0]) == ["Practitioner/ada", "Patient/pat1"]


async def test_schedule_buffers_keep_time_around_a_booked_visit(
        client: httpx.AsyncClient) -> None:
    buffers = availability(sub("bufferBefore", valueDuration=minutes(15)),
                           sub("bufferAfter", valueDuration=minutes(15)), zone="UTC")
    await doctor(client, "ada", "09:00", "09:30", "10:30", "11:00", extension=[buffers])
    await put(client, appointment("a1", "Practitioner/ada", start=at("10:00"), end=at("10:30")))
    assert starts(await find(client, ("practitioner", "Practitioner/ada"))) == ["09:00", "11:00"]


async def test_an_emergency_reserved_slot_is_offered_before_its_release_only_to_roles_that_may(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00")
    reserve = [{"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": at("08:00")}]
    released = [{"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": "2020-01-01T00:00:00Z"}]
    await put(client, *half_hours("s-ada", "09:30", extension=reserve),
              *half_hours("s-ada", "10:00", extension=released))
    patient = bearer(mint("patient/*.rs", role="patient", fhir_user="Patient/p1"))

    by_patient = await find(client, ("practitioner", "Practitioner/ada"), headers=patient)
    by_administrator = await find(client, ("practitioner", "Practitioner/ada"))

    assert starts(by_patient) == ["09:00", "10:00"]
    assert starts(by_administrator) == ["09:00", "09:30", "10:00"]


def hold(expires: str) -> list[dict[str, Any]]:
    return [{"url": HOLD_URL, "extension": [
        {"url": "appointment", "valueReference": {"reference": "Appointment/held"}},
        {"url": "expires", "valueInstant": expires}]}]


async def test_a_lapsed_hold_counts_as_free_and_a_live_one_does_not(
        client: httpx.AsyncClient) -> None:
    await put(client, practitioner("ada", "Ada"), schedule("s-ada", "Practitioner/ada"),
              *half_hours("s-ada", "09:00", status="busy-tentative",
                          extension=hold("2020-01-01T00:00:00Z")),
              *half_hours("s-ada", "09:30", status="busy-tentative",
                          extension=hold("2099-01-01T00:00:00Z")))
    assert starts(await find(client, ("practitioner", "Practitioner/ada"))) == ["09:00"]


async def test_service_type_picks_schedules_and_slots_and_is_recorded(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", serviceType=[concept(CONSULTATION)])
    await doctor(client, "bo", "09:30", serviceType=[concept(ECG)])
    await doctor(client, "cy", "10:00")
    await put(client, *half_hours("s-cy", "10:30", serviceType=[concept(ECG)]))
    wanted = f"{CONSULTATION[0]}|{CONSULTATION[1]}"
    everyone = ("practitioner", "Practitioner/ada,Practitioner/bo,Practitioner/cy")
    bundle = await find(client, everyone, ("service-type", wanted))
    assert starts(bundle) == ["09:00", "10:00"]
    assert proposals(bundle)[0]["serviceType"] == [concept(CONSULTATION)]
    without_actors = await find(client, ("service-type", wanted))
    assert starts(without_actors) == ["09:00"]


async def test_specialty_without_actors_offers_every_matching_schedule(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", specialty=[concept(CARDIOLOGY)])
    await doctor(client, "bo", "09:30", specialty=[concept(CARDIOLOGY)])
    await doctor(client, "cy", "10:00")
    bundle = await find(client, ("specialty", CARDIOLOGY[1]))
    assert starts(bundle) == ["09:00", "09:30"]
    assert [actors_of(p) for p in proposals(bundle)] == [["Practitioner/ada"],
                                                         ["Practitioner/bo"]]


async def test_total_counts_every_time_and_count_limits_the_page(
        client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00", "10:30", "11:00")
    bundle = await find(client, ("practitioner", "Practitioner/ada"), ("_count", "2"))
    assert starts(bundle) == ["09:00", "09:30"] and bundle["total"] == 5
    only_total = await find(client, ("practitioner", "Practitioner/ada"), ("_count", "0"))
    assert proposals(only_total) == [] and only_total["total"] == 5


async def test_used_slots_are_included_after_the_proposals(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "11:00")
    bundle = await find(client, ("practitioner", "Practitioner/ada"), ("duration", "60"))
    modes = [e["search"]["mode"] for e in bundle["entry"]]
    assert modes == ["match", "include", "include"]
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in included] == ["s-ada-0900", "s-ada-0930"]
    assert included[0]["fullUrl"].endswith("/Slot/s-ada-0900")
    assert bundle["entry"][0]["fullUrl"].startswith("urn:uuid:")


async def test_post_parameters_answers_as_get_does(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00")
    await doctor(client, "bo", "09:00")
    await put(client, location("room1", "Room 1"), schedule("s-room1", "Location/room1"),
              *half_hours("s-room1", "09:00", "10:00"))
    got = await find(client, ("practitioner", "Practitioner/ada,Practitioner/bo"),
                     ("location-reference", "room1"), ("service-type", "x|y"),
                     ("patient-reference", "Patient/pat1"), ("_count", "5"))
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDateTime": WINDOW["start"]},
        {"name": "end", "valueInstant": WINDOW["end"]},
        {"name": "practitioner", "valueReference": {"reference": "Practitioner/ada"}},
        {"name": "practitioner", "valueString": "Practitioner/bo"},
        {"name": "location-reference", "valueReference": {"reference": "Location/room1"}},
        {"name": "service-type", "valueCoding": {"system": "x", "code": "y"}},
        {"name": "patient-reference", "valueReference": {"reference": "Patient/pat1"}},
        {"name": "_count", "valueInteger": 5}]}
    response = await client.post("Slot/$find-slots", json=body)
    assert response.status_code == 200, response.text
    posted = response.json()
    assert starts(got) == ["09:00", "10:00"]
    assert posted["entry"] == got["entry"] and posted["total"] == got["total"]


async def test_the_operation_also_runs_at_the_system_level(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00")
    bundle = await find(client, ("practitioner", "Practitioner/ada"), path="$find-slots")
    assert starts(bundle) == ["09:00"]


async def test_the_operation_is_declared_and_advertised(client: httpx.AsyncClient) -> None:
    url = "http://fhir-scheduler.org/fhir/OperationDefinition/Slot-find-slots"
    statement = (await client.get("metadata")).json()
    rest = statement["rest"][0]
    assert {"name": "find-slots", "definition": url} in rest["operation"]
    [slot_entry] = [r for r in rest["resource"] if r["type"] == "Slot"]
    assert {"name": "find-slots", "definition": url} in slot_entry["operation"]
    definition = (await client.get("OperationDefinition/Slot-find-slots")).json()
    assert (definition["url"], definition["code"], definition["resource"]) == (
        url, "find-slots", ["Slot"])
    assert (definition["system"], definition["type"], definition["instance"],
            definition["affectsState"]) == (True, True, False, False)
    declared = {p["name"] for p in definition["parameter"] if p["use"] == "in"}
    assert declared == {"start", "end", "service-type", "specialty", "appointment-type",
                        "practitioner", "practitioner-role", "location-reference", "device",
                        "schedule", "patient-reference", "duration", "_count"}


@pytest.mark.parametrize(("params", "expression"), [
    ({"end": f"{DAY}T12:00:00Z", "practitioner": "Practitioner/ada"}, "start"),
    ({"start": f"{DAY}T12:00:00Z", "practitioner": "Practitioner/ada"}, "end"),
    ({"start": f"{DAY}T12:00:00Z", "end": f"{DAY}T12:00:00Z",
      "practitioner": "Practitioner/ada"}, "end"),
    ({"start": "2030-01-01", "end": "2030-06-01", "practitioner": "Practitioner/ada"}, "end"),
    ({**WINDOW, "practitioner": "Patient/ada"}, "practitioner"),
    ({**WINDOW, "practitioner": "Practitioner/a b"}, "practitioner"),
    ({**WINDOW, "practitioner": "Practitioner/ada", "duration": "0"}, "duration"),
    ({**WINDOW, "practitioner": "Practitioner/ada", "duration": "half"}, "duration"),
    ({**WINDOW, "practitioner": "Practitioner/ada", "_count": "-1"}, "_count"),
    ({**WINDOW, "start": "tomorrow", "practitioner": "Practitioner/ada"}, "start"),
    ({**WINDOW, "doctor": "Practitioner/ada"}, "doctor"),
])
async def test_bad_requests_are_400_naming_the_parameter(
        client: httpx.AsyncClient, params: dict[str, str], expression: str) -> None:
    response = await client.get("Slot/$find-slots", params=params)
    issues = outcome_issues(response, 400)
    assert expression in expressions(issues), issues


async def test_a_post_that_is_not_parameters_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("Slot/$find-slots", json={"resourceType": "Patient"})
    outcome_issues(response, 400)
    missing = {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDateTime": WINDOW["start"]},
        {"name": "practitioner", "valueReference": {"reference": "Practitioner/ada"}}]}
    issues = outcome_issues(await client.post("Slot/$find-slots", json=missing), 400)
    assert "end" in expressions(issues)
