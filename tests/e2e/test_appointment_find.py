"""IHE ITI-115 `Appointment/$find` over HTTP on both stores: ITI-115 names, same finder."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.checks import expressions, outcome_issues
from tests.e2e.search_factories import (
    CONSULTATION,
    ECG,
    appointment,
    concept,
    location,
    organization,
    practitioner_role,
    put,
    schedule,
)
from tests.e2e.test_find_slots import (
    WINDOW,
    actors_of,
    at,
    doctor,
    find,
    half_hours,
    proposals,
    starts,
)

FIND = "Appointment/$find"


async def test_a_practitioners_free_time_is_proposed(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30")
    bundle = await find(client, ("practitioner", "Practitioner/ada"), path=FIND)
    assert starts(bundle) == ["09:00", "09:30"] and bundle["total"] == 2
    assert proposals(bundle)[0]["status"] == "proposed"
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["match", "match", "include",
                                                              "include"]


async def test_start_time_and_end_time_are_aliases(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "12:00")
    bundle = await find(client, ("startTime", at("08:00")), ("endTime", at("10:00")),
                        ("practitioner", "Practitioner/ada"), path=FIND, window=False)
    assert starts(bundle) == ["09:00"]


async def test_visit_type_picks_schedules_and_is_recorded(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", serviceType=[concept(CONSULTATION)])
    await doctor(client, "bo", "09:30", serviceType=[concept(ECG)])
    bundle = await find(client, ("practitioner", "Practitioner/ada,Practitioner/bo"),
                        ("visit-type", f"{ECG[0]}|{ECG[1]}"), path=FIND)
    assert starts(bundle) == ["09:30"]
    assert proposals(bundle)[0]["serviceType"] == [concept(ECG)]


async def test_organization_means_its_practitioner_roles(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00")
    await doctor(client, "bo", "09:30")
    await put(client, organization("org1", "Riverside"),
              practitioner_role("r-ada", practitioner_id="ada", organization_id="org1"))
    bundle = await find(client, ("organization", "Organization/org1"), path=FIND)
    assert starts(bundle) == ["09:00"]
    narrowed = await find(client, ("organization", "Organization/org1"),
                          ("practitioner", "Practitioner/bo,Practitioner/ada"), path=FIND)
    assert starts(narrowed) == ["09:00"]


async def test_location_string_finds_rooms_by_name(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00")
    await put(client, location("room1", "Cardiology Exam Room"),
              location("room2", "Dermatology Room"),
              schedule("s-room1", "Location/room1"), schedule("s-room2", "Location/room2"),
              *half_hours("s-room1", "09:30"), *half_hours("s-room2", "10:00"))
    bundle = await find(client, ("practitioner", "Practitioner/ada"),
                        ("location-string", "cardiology exam"), path=FIND)
    assert starts(bundle) == ["09:30"]
    assert actors_of(proposals(bundle)[0]) == ["Practitioner/ada", "Location/room1"]


async def test_patient_resource_and_reason(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30")
    await put(client, appointment("busy", "Patient/pat1", "Practitioner/other",
                                  start=at("09:00"), end=at("09:30")))
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDateTime": WINDOW["start"]},
        {"name": "end", "valueDateTime": WINDOW["end"]},
        {"name": "practitioner", "valueReference": {"reference": "Practitioner/ada"}},
        {"name": "patient-resource", "resource": {"resourceType": "Patient", "id": "pat1"}},
        {"name": "reason", "valueString": "Chest pain"}]}
    response = await client.post(FIND, json=body)
    assert response.status_code == 200, response.text
    [proposal] = proposals(response.json())
    assert proposal["start"] == at("09:30")
    assert actors_of(proposal) == ["Practitioner/ada", "Patient/pat1"]
    assert proposal["reasonCode"] == [{"text": "Chest pain"}]


async def test_post_parameters_answers_as_get_does(client: httpx.AsyncClient) -> None:
    await doctor(client, "ada", "09:00", "09:30", "10:00")
    got = await find(client, ("practitioner", "Practitioner/ada"), ("specialty", "x|y"),
                     ("_count", "2"), path=FIND)
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDateTime": WINDOW["start"]},
        {"name": "end", "valueDateTime": WINDOW["end"]},
        {"name": "practitioner", "valueString": "Practitioner/ada"},
        {"name": "specialty", "valueCodeableConcept": concept(("x", "y"))},
        {"name": "_count", "valueInteger": 2}]}
    response = await client.post(FIND, json=body)
    assert response.status_code == 200, response.text
    assert starts(got) == ["09:00", "09:30"] and got["total"] == 3
    assert response.json()["entry"] == got["entry"]


async def test_the_operation_is_declared_and_advertised(client: httpx.AsyncClient) -> None:
    url = "http://fhir-scheduler.org/fhir/OperationDefinition/Appointment-find"
    statement = (await client.get("metadata")).json()
    [entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Appointment"]
    assert {"name": "find", "definition": url} in entry["operation"]
    definition = (await client.get("OperationDefinition/Appointment-find")).json()
    assert (definition["url"], definition["code"], definition["resource"],
            definition["type"], definition["instance"]) == (url, "find", ["Appointment"],
                                                            True, False)
    declared = {p["name"] for p in definition["parameter"] if p["use"] == "in"}
    assert {"start", "end", "specialty", "visit-type", "practitioner", "organization",
            "location-string", "location-reference", "patient-reference", "patient-resource",
            "reason", "_count"} <= declared


async def test_bad_requests_are_400_naming_the_parameter(client: httpx.AsyncClient) -> None:
    missing = await client.get(FIND, params={"end": at("10:00"),
                                             "practitioner": "Practitioner/ada"})
    assert "start" in expressions(outcome_issues(missing, 400))
    unknown = await client.get(FIND, params={**WINDOW, "duration": "30"})
    assert "duration" in expressions(outcome_issues(unknown, 400))
    wrong_type = await client.get(FIND, params={**WINDOW, "organization": "Patient/x"})
    assert "organization" in expressions(outcome_issues(wrong_type, 400))
