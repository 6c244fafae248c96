"""`Schedule/{id}/$generate-slots` and slot generation on Schedule writes, over HTTP.

Windows are in March 2030 around the US spring-forward (Sunday 2030-03-10), far enough ahead
that the server's own clock never clips them.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.unit.scheduling.availability_factories import (
    WEEKDAYS,
    availability,
    available_time,
    break_time,
    make_schedule,
)

WEEK = {"start": "2030-03-06", "end": "2030-03-13"}  # Wed-Tue, 5 working days
NEXT_WEEK = {"start": "2030-03-13T00:00:00-04:00", "end": "2030-03-20T00:00:00-04:00"}
CLINIC_DAY = (available_time(WEEKDAYS, "09:00:00", "17:00:00"), break_time("12:00:00", "13:00:00"))
OPERATION_URL = "http://fhir-scheduler.org/fhir/OperationDefinition/Schedule-generate-slots"


def clinic_schedule(*rules: dict, schedule_id: str = "sched-1") -> dict:
    return {**make_schedule(availability(*rules), schedule_id=schedule_id),
            "planningHorizon": WEEK}


def values(parameters: dict, name: str) -> list[Any]:
    """The value[x] of every parameter called `name`."""
    return [next(v for k, v in p.items() if k.startswith("value"))
            for p in parameters["parameter"] if p["name"] == name]


def references(parameters: dict, name: str) -> list[str]:
    return [value["reference"] for value in values(parameters, name)]


async def slots(client: httpx.AsyncClient, schedule_id: str, **params: str) -> list[dict]:
    response = await client.get("Slot", params={"schedule": f"Schedule/{schedule_id}",
                                                "_sort": "start", "_count": "200", **params})
    return [entry["resource"] for entry in response.json().get("entry", [])]


async def generate(client: httpx.AsyncClient, schedule_id: str, window: dict) -> httpx.Response:
    return await client.get(f"Schedule/{schedule_id}/$generate-slots", params=window)


async def test_creating_a_schedule_generates_its_horizon_at_nine_local_across_dst(
        client: httpx.AsyncClient) -> None:
    created = await client.put("Schedule/sched-1", json=clinic_schedule(*CLINIC_DAY))

    found = await slots(client, "sched-1")
    starts = [slot["start"] for slot in found]
    assert created.status_code == 201
    assert len(found) == 5 * 14
    assert "2030-03-08T14:00:00Z" in starts and "2030-03-08T13:30:00Z" not in starts  # EST
    assert "2030-03-11T13:00:00Z" in starts and "2030-03-11T12:30:00Z" not in starts  # EDT
    assert {slot["status"] for slot in found} == {"free"}


async def test_generate_slots_twice_creates_nothing_the_second_time(
        client: httpx.AsyncClient) -> None:
    await client.put("Schedule/sched-1", json=clinic_schedule(*CLINIC_DAY))

    first = await generate(client, "sched-1", NEXT_WEEK)
    second = await generate(client, "sched-1", NEXT_WEEK)

    assert first.status_code == 200 and first.json()["resourceType"] == "Parameters"
    assert values(first.json(), "created-count") == [5 * 14]
    assert len(references(first.json(), "created")) == 5 * 14
    assert values(first.json(), "rules") == ["schedule-availability"]
    assert values(second.json(), "created-count") == [0]
    assert values(second.json(), "kept-count") == [5 * 14]
    assert references(second.json(), "created") == []
    assert len(await slots(client, "sched-1")) == 10 * 14


async def test_post_with_parameters_body(client: httpx.AsyncClient) -> None:
    await client.put("Schedule/sched-1", json=clinic_schedule(*CLINIC_DAY))
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDateTime": NEXT_WEEK["start"]},
        {"name": "end", "valueDateTime": "2030-03-14T00:00:00-04:00"}]}

    response = await client.post("Schedule/sched-1/$generate-slots", json=body)

    assert response.status_code == 200
    assert values(response.json(), "created-count") == [14]
    assert references(response.json(), "schedule") == ["Schedule/sched-1"]


async def book(client: httpx.AsyncClient, slot: dict) -> str:
    """Book a slot with an Appointment and make sure the slot ends up busy."""
    appointment = {"resourceType": "Appointment", "status": "booked", "start": slot["start"],
                   "end": slot["end"], "slot": [{"reference": f"Slot/{slot['id']}"}],
                   "participant": [{"actor": {"reference": "Practitioner/d1"},
                                    "required": "required", "status": "accepted"}]}
    created = await client.post("Appointment", json=appointment)
    assert created.status_code == 201, created.text
    current = (await client.get(f"Slot/{slot['id']}")).json()
    if current["status"] != "busy":  # without booking rules a plain update marks it
        busy = await client.put(f"Slot/{slot['id']}", json={**current, "status": "busy"})
        assert busy.status_code == 200, busy.text
    return str(created.json()["id"])


async def test_changed_rules_regenerate_free_slots_and_report_the_booked_one(
        client: httpx.AsyncClient) -> None:
    await client.put("Schedule/sched-1", json=clinic_schedule(*CLINIC_DAY))
    afternoon = next(s for s in await slots(client, "sched-1")
                     if s["start"] == "2030-03-11T18:00:00Z")  # Monday 14:00 EDT
    appointment_id = await book(client, afternoon)
    booked_version = (await client.get(f"Slot/{afternoon['id']}")).json()["meta"]["versionId"]

    changed = await client.put("Schedule/sched-1", json=clinic_schedule(
        available_time(WEEKDAYS, "09:00:00", "12:00:00")))
    report = await generate(client, "sched-1", {"start": "2030-03-06T00:00:00-05:00",
                                                "end": "2030-03-13T00:00:00-04:00"})

    assert changed.status_code == 200
    remaining = await slots(client, "sched-1")
    assert len(remaining) == 5 * 6 + 1
    booked = (await client.get(f"Slot/{afternoon['id']}")).json()
    assert (booked["status"], booked["meta"]["versionId"]) == ("busy", booked_version)
    assert references(report.json(), "orphaned-slot") == [f"Slot/{afternoon['id']}"]
    assert references(report.json(), "affected-appointment") == [f"Appointment/{appointment_id}"]
    assert values(report.json(), "orphaned-slot-count") == [1]
    assert values(report.json(), "removed-count") == [0]  # the PUT already removed them


async def test_r4_fallback_from_a_practitioner_roles_available_time(
        client: httpx.AsyncClient) -> None:
    role = {"resourceType": "PractitionerRole", "id": "role-1", "active": True,
            "availableTime": [{"daysOfWeek": ["mon"], "availableStartTime": "10:00:00",
                               "availableEndTime": "11:00:00"}]}
    await client.put("PractitionerRole/role-1", json=role)
    schedule = {**make_schedule(schedule_id="sched-r4"), "planningHorizon": WEEK,
                "actor": [{"reference": "PractitionerRole/role-1"}]}
    await client.put("Schedule/sched-r4", json=schedule)

    report = await generate(client, "sched-r4", NEXT_WEEK)

    assert values(report.json(), "rules") == ["PractitionerRole/role-1"]
    assert [s["start"] for s in await slots(client, "sched-r4")] == [
        "2030-03-11T14:00:00Z", "2030-03-11T14:30:00Z",  # from the PUT, over the horizon
        "2030-03-18T14:00:00Z", "2030-03-18T14:30:00Z"]


async def test_unknown_schedule_is_404(client: httpx.AsyncClient) -> None:
    response = await generate(client, "nope", NEXT_WEEK)

    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_missing_invalid_or_empty_windows_are_400(client: httpx.AsyncClient) -> None:
    await client.put("Schedule/sched-1", json=clinic_schedule(*CLINIC_DAY))
    windows = [{"end": NEXT_WEEK["end"]},
               {"start": "next monday", "end": NEXT_WEEK["end"]},
               {"start": "2030-03-13", "end": NEXT_WEEK["end"]},
               {"start": NEXT_WEEK["end"], "end": NEXT_WEEK["start"]},
               {"start": NEXT_WEEK["start"], "end": NEXT_WEEK["start"]}]

    for window in windows:
        response = await generate(client, "sched-1", window)
        assert response.status_code == 400, window
        assert response.json()["issue"][0]["expression"] in (["start"], ["end"])
    not_parameters = await client.post("Schedule/sched-1/$generate-slots",
                                       json={"resourceType": "Patient"})
    assert not_parameters.status_code == 400
    assert len(await slots(client, "sched-1")) == 5 * 14


async def test_operation_is_advertised_and_its_definition_served(
        client: httpx.AsyncClient) -> None:
    statement = (await client.get("metadata")).json()
    definition = await client.get("OperationDefinition/Schedule-generate-slots")

    (schedule,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Schedule"]
    assert {"name": "generate-slots", "definition": OPERATION_URL} in schedule["operation"]
    assert definition.status_code == 200
    body = definition.json()
    assert (body["url"], body["code"], body["resource"]) == (OPERATION_URL, "generate-slots",
                                                            ["Schedule"])
    assert (body["system"], body["type"], body["instance"]) == (False, False, True)
    assert {p["name"] for p in body["parameter"] if p["use"] == "in"} == {"start", "end"}
