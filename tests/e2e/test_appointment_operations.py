"""Appointment `$hold` (ITI-116), `$book` (ITI-117, Argonaut `cancelled-appt-id`) and
`$reschedule` over HTTP, on both stores: slots move free → busy-tentative → busy, a lost
claim is 409 with nothing written, and bad Parameters are 400s naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fhir_server.scheduling.slot_hold import parse_hold
from tests.e2e.checks import created, expressions, outcome_issues, versions_written
from tests.e2e.factories import make_patient, make_schedule, make_slot

BASE = "http://testserver/fhir"
PATIENT = "Patient/pat1"
PRACTITIONER = "Practitioner/p1"
MORNING = ("2030-03-11T14:00:00Z", "2030-03-11T14:30:00Z")
AFTERNOON = ("2030-03-11T18:00:00Z", "2030-03-11T18:30:00Z")
OPERATIONS = ("hold", "book", "reschedule")

Resource = dict[str, Any]


# --- small factories and calls the scheduling tests share -----------------------------

def parameters(*parts: Resource) -> Resource:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def reference(name: str, target: str) -> Resource:
    return {"name": name, "valueReference": {"reference": target}}


def resource_part(name: str, resource: Resource) -> Resource:
    return {"name": name, "resource": resource}


def candidate(slot_ids: list[str], *, when: tuple[str, str] = MORNING,
              status: str = "proposed", patient: str | None = PATIENT,
              participant_status: str = "needs-action", **overrides: Any) -> Resource:
    """An Appointment on the given slots, as `$find` proposes it (practitioner required)."""
    participants = [{"actor": {"reference": PRACTITIONER}, "required": "required",
                     "status": participant_status}]
    if patient is not None:
        participants.insert(0, {"actor": {"reference": patient}, "required": "required",
                                "status": participant_status})
    appointment = {"resourceType": "Appointment", "status": status, "start": when[0],
                   "end": when[1], "participant": participants, **overrides}
    if slot_ids:
        appointment["slot"] = [{"reference": f"Slot/{i}"} for i in slot_ids]
    return appointment


async def open_slot(client: httpx.AsyncClient, when: tuple[str, str] = MORNING, *,
                    status: str = "free") -> str:
    """A new slot of the practitioner's schedule; its id."""
    schedule = await created(client, make_schedule(PRACTITIONER))
    slot = await created(client, make_slot(schedule["id"], when[0], when[1], status=status))
    return str(slot["id"])


async def read(client: httpx.AsyncClient, reference: str) -> Resource:
    response = await client.get(reference)
    assert response.status_code == 200, response.text
    body: Resource = response.json()
    return body


async def operation(client: httpx.AsyncClient, path: str, *parts: Resource) -> httpx.Response:
    return await client.post(path, json=parameters(*parts))


def appointment_of(response: httpx.Response) -> Resource:
    """The one Appointment of an ITI-116/117 searchset Bundle response."""
    assert response.status_code in (200, 201), response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset", bundle
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert len(matches) == 1 and bundle["total"] == 1
    assert matches[0]["fullUrl"] == f"{BASE}/Appointment/{matches[0]['resource']['id']}"
    resource: Resource = matches[0]["resource"]
    assert resource["resourceType"] == "Appointment"
    return resource


async def hold(client: httpx.AsyncClient, slot_ids: list[str], **overrides: Any) -> Resource:
    response = await operation(client, "Appointment/$hold",
                               resource_part("appointment-resource",
                                             candidate(slot_ids, **overrides)))
    return appointment_of(response)


async def booked(client: httpx.AsyncClient, slot_ids: list[str], **overrides: Any) -> Resource:
    """A new appointment booked through `$book` on the given slots."""
    response = await operation(client, "Appointment/$book", resource_part(
        "appointment-resource", candidate(slot_ids, status="booked", **overrides)))
    assert response.status_code == 201, response.text
    appointment = appointment_of(response)
    assert response.headers["location"].startswith(f"{BASE}/Appointment/{appointment['id']}")
    return appointment


async def slot_status(client: httpx.AsyncClient, slot_id: str) -> str:
    status: str = (await read(client, f"Slot/{slot_id}"))["status"]
    return status


async def appointment_count(client: httpx.AsyncClient) -> int:
    response = await client.get("Appointment", params={"_summary": "count"})
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


# --- $hold ------------------------------------------------------------------------------

async def test_hold_then_book_moves_slot_tentative_then_busy(client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)

    held = await hold(client, [slot_id])

    assert held["status"] == "pending"
    slot = await read(client, f"Slot/{slot_id}")
    assert slot["status"] == "busy-tentative"
    claim = parse_hold(slot)
    assert claim is not None and claim.appointment_id == held["id"]
    assert claim.expires is not None and claim.expires > datetime.now(UTC)

    response = await operation(client, "Appointment/$book",
                               reference("appointment-reference", f"Appointment/{held['id']}"))

    assert response.status_code == 200, response.text
    assert appointment_of(response)["status"] == "booked"
    assert (await read(client, f"Appointment/{held['id']}"))["status"] == "booked"
    slot = await read(client, f"Slot/{slot_id}")
    assert slot["status"] == "busy" and parse_hold(slot) is None


async def test_hold_by_reference_holds_a_stored_proposed_appointment(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    proposed = await created(client, candidate([slot_id]))

    response = await operation(
        client, "Appointment/$hold",
        reference("appointment-reference", f"{BASE}/Appointment/{proposed['id']}"),
        {"name": "hold-duration", "valueInteger": 5})

    assert response.status_code == 200, response.text
    held = appointment_of(response)
    assert held["id"] == proposed["id"] and held["status"] == "pending"
    claim = parse_hold(await read(client, f"Slot/{slot_id}"))
    assert claim is not None and claim.expires is not None
    remaining = (claim.expires - datetime.now(UTC)).total_seconds()
    assert 4 * 60 < remaining <= 5 * 60


async def test_hold_of_a_taken_slot_is_409_and_writes_nothing(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    await hold(client, [slot_id])
    before = await versions_written(client)

    response = await operation(client, "Appointment/$hold",
                               resource_part("appointment-resource", candidate([slot_id])))

    outcome_issues(response, 409)
    assert await versions_written(client) == before
    assert await appointment_count(client) == 1


@pytest.mark.parametrize(("part", "name"), [
    ({"name": "hold-duration", "valueInteger": 0}, "hold-duration"),
    ({"name": "hold-duration", "valueInteger": 61}, "hold-duration"),
    ({"name": "hold-duration", "valueString": "10"}, "hold-duration"),
    (reference("appointment-reference", "Patient/pat1"), "appointment-reference"),
    (resource_part("appointment-resource", make_patient()), "appointment-resource"),
    ({"name": "colour", "valueString": "red"}, "colour"),
])
async def test_hold_with_invalid_parameters_is_400_naming_the_parameter(
        client: httpx.AsyncClient, part: Resource, name: str) -> None:
    slot_id = await open_slot(client)
    before = await versions_written(client)
    parts = [part] if part["name"].startswith("appointment") else [
        resource_part("appointment-resource", candidate([slot_id])), part]

    response = await operation(client, "Appointment/$hold", *parts)

    issues = outcome_issues(response, 400)
    assert f"Parameters.parameter.where(name='{name}')" in expressions(issues)
    assert await versions_written(client) == before


async def test_hold_needs_exactly_one_appointment(client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    proposed = await created(client, candidate([slot_id]))

    for parts in ([], [reference("appointment-reference", f"Appointment/{proposed['id']}"),
                       resource_part("appointment-resource", candidate([slot_id]))]):
        issues = outcome_issues(await operation(client, "Appointment/$hold", *parts), 400)
        assert "Parameters.parameter.where(name='appointment-reference')" in expressions(issues)


async def test_hold_refuses_a_body_that_is_not_parameters(client: httpx.AsyncClient) -> None:
    response = await client.post("Appointment/$hold", json=candidate(["x"]))

    outcome_issues(response, 400)


async def test_hold_of_an_unknown_appointment_is_404(client: httpx.AsyncClient) -> None:
    response = await operation(client, "Appointment/$hold",
                               reference("appointment-reference", "Appointment/nope"))

    outcome_issues(response, 404)


# --- $book ------------------------------------------------------------------------------

async def test_book_of_a_new_appointment_is_201_with_its_slot_busy(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)

    appointment = await booked(client, [slot_id])

    assert appointment["status"] == "booked"
    assert (await read(client, f"Appointment/{appointment['id']}"))["status"] == "booked"
    assert await slot_status(client, slot_id) == "busy"


async def test_book_attaches_and_registers_the_patient(client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    proposed = await created(client, candidate([slot_id], patient=None))

    response = await operation(
        client, "Appointment/$book",
        reference("appointment-reference", f"Appointment/{proposed['id']}"),
        resource_part("patient-resource", make_patient("Adeyemi")),
        {"name": "comment", "valueString": "Bring the referral letter"})

    appointment = appointment_of(response)
    assert appointment["status"] == "booked"
    patients = [p["actor"]["reference"] for p in appointment["participant"]
                if p["actor"]["reference"].startswith("Patient/")]
    assert len(patients) == 1
    patient = await read(client, patients[0])
    assert patient["name"][0]["family"] == "Adeyemi"
    assert appointment["comment"] == "Bring the referral letter"
    assert await slot_status(client, slot_id) == "busy"


async def test_book_of_a_cancelled_appointment_cancels_it_and_frees_the_slot(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    appointment = await booked(client, [slot_id])
    cancelled = {**appointment, "status": "cancelled",
                 "cancelationReason": {"text": "Patient is travelling"}}

    response = await operation(client, "Appointment/$book",
                               resource_part("appointment-resource", cancelled))

    assert response.status_code == 200, response.text
    assert appointment_of(response)["status"] == "cancelled"
    assert (await read(client, f"Appointment/{appointment['id']}"))["status"] == "cancelled"
    assert await slot_status(client, slot_id) == "free"


async def test_book_with_cancelled_appt_id_moves_the_booking(client: httpx.AsyncClient) -> None:
    old_slot = await open_slot(client, MORNING)
    new_slot = await open_slot(client, AFTERNOON)
    old = await booked(client, [old_slot])

    response = await operation(
        client, "Appointment/$book",
        resource_part("appointment-resource", candidate([new_slot], when=AFTERNOON)),
        {"name": "cancelled-appt-id", "valueUri": f"Appointment/{old['id']}"})

    new = appointment_of(response)
    assert response.status_code == 201, response.text
    assert new["id"] != old["id"] and new["status"] == "booked"
    assert new["start"].startswith("2030-03-11T18:00")
    assert (await read(client, f"Appointment/{old['id']}"))["status"] == "cancelled"
    assert await slot_status(client, old_slot) == "free"
    assert await slot_status(client, new_slot) == "busy"


async def test_book_with_cancelled_appt_id_onto_a_taken_slot_keeps_the_old_booking(
        client: httpx.AsyncClient) -> None:
    old_slot = await open_slot(client, MORNING)
    taken_slot = await open_slot(client, AFTERNOON, status="busy")
    old = await booked(client, [old_slot])
    before = await versions_written(client)

    response = await operation(
        client, "Appointment/$book",
        resource_part("appointment-resource", candidate([taken_slot], when=AFTERNOON)),
        {"name": "cancelled-appt-id", "valueUri": f"Appointment/{old['id']}"})

    outcome_issues(response, 409)
    assert await versions_written(client) == before
    assert (await read(client, f"Appointment/{old['id']}"))["status"] == "booked"
    assert await slot_status(client, old_slot) == "busy"


LATER = ("2030-03-11T14:15:00Z", "2030-03-11T14:45:00Z")
REPLACES = "http://fhir-scheduler.org/fhir/StructureDefinition/replaces"


async def test_book_with_cancelled_appt_id_may_overlap_the_old_time_of_the_same_patient(
        client: httpx.AsyncClient) -> None:
    old_slot = await open_slot(client, MORNING)
    later_slot = await open_slot(client, LATER)
    old = await booked(client, [old_slot])
    moved = resource_part("appointment-resource", candidate([later_slot], when=LATER))
    outcome_issues(await operation(client, "Appointment/$book", moved), 409)

    response = await operation(client, "Appointment/$book", moved, reference(
        "cancelled-appt-id", f"Appointment/{old['id']}"))

    assert response.status_code == 201, response.text
    new = appointment_of(response)
    assert new["status"] == "booked" and new["start"] == LATER[0]
    assert {"url": REPLACES, "valueReference": {"reference": f"Appointment/{old['id']}"}} \
        in new["extension"]
    cancelled = await read(client, f"Appointment/{old['id']}")
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"]["text"] == f"Rescheduled to Appointment/{new['id']}"
    assert [await slot_status(client, s) for s in (old_slot, later_slot)] == ["free", "busy"]
    old_history = await read(client, f"Appointment/{old['id']}/_history")
    assert [e["resource"]["status"] for e in old_history["entry"]] == ["cancelled", "booked"]
    new_history = await read(client, f"Appointment/{new['id']}/_history")
    assert [e["resource"]["status"] for e in new_history["entry"]] == ["booked"]


async def test_book_with_cancelled_appt_id_replaces_only_with_a_new_appointment(
        client: httpx.AsyncClient) -> None:
    old = await booked(client, [await open_slot(client, MORNING)])
    proposed = await created(client, candidate([await open_slot(client, AFTERNOON)],
                                               when=AFTERNOON))
    before = await versions_written(client)

    response = await operation(
        client, "Appointment/$book",
        reference("appointment-reference", f"Appointment/{proposed['id']}"),
        reference("cancelled-appt-id", f"Appointment/{old['id']}"))

    issues = outcome_issues(response, 422)
    assert "Parameters.parameter.where(name='appointment-reference')" in expressions(issues)
    assert await versions_written(client) == before


async def test_a_client_cannot_set_the_replaces_link_itself(client: httpx.AsyncClient) -> None:
    old = await booked(client, [await open_slot(client, MORNING)])
    slot_id = await open_slot(client, AFTERNOON)
    before = await versions_written(client)
    forged = candidate([slot_id], when=AFTERNOON, status="booked", extension=[
        {"url": REPLACES, "valueReference": {"reference": f"Appointment/{old['id']}"}}])

    issues = outcome_issues(await client.post("Appointment", json=forged), 422)

    assert "Appointment.extension" in expressions(issues)
    assert await versions_written(client) == before
    assert await slot_status(client, slot_id) == "free"


async def test_book_of_a_taken_slot_is_409_and_writes_nothing(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    await booked(client, [slot_id])
    before = await versions_written(client)

    response = await operation(client, "Appointment/$book", resource_part(
        "appointment-resource", candidate([slot_id], status="booked",
                                          patient="Patient/someone-else")))

    outcome_issues(response, 409)
    assert await versions_written(client) == before


@pytest.mark.parametrize(("parts", "name"), [
    ([], "appointment-reference"),
    ([{"name": "comment", "valueBoolean": True}], "comment"),
    ([{"name": "cancelled-appt-id", "valueUri": "Slot/1"}], "cancelled-appt-id"),
    ([resource_part("patient-resource", {"resourceType": "Device"})], "patient-resource"),
])
async def test_book_with_invalid_parameters_is_400_naming_the_parameter(
        client: httpx.AsyncClient, parts: list[Resource], name: str) -> None:
    slot_id = await open_slot(client)
    if name != "appointment-reference":
        parts = [resource_part("appointment-resource", candidate([slot_id])), *parts]
    before = await versions_written(client)

    response = await operation(client, "Appointment/$book", *parts)

    issues = outcome_issues(response, 400)
    assert f"Parameters.parameter.where(name='{name}')" in expressions(issues)
    assert await versions_written(client) == before


# --- $reschedule --------------------------------------------------------------------------

async def test_reschedule_to_another_slot_moves_the_time_and_frees_the_old_slot(
        client: httpx.AsyncClient) -> None:
    old_slot = await open_slot(client, MORNING)
    new_slot = await open_slot(client, AFTERNOON)
    appointment = await booked(client, [old_slot])

    response = await operation(client, f"Appointment/{appointment['id']}/$reschedule",
                               reference("slot", f"Slot/{new_slot}"))

    assert response.status_code == 200, response.text
    moved = response.json()
    assert moved["resourceType"] == "Appointment" and moved["id"] == appointment["id"]
    assert response.headers["etag"] == f'W/"{moved["meta"]["versionId"]}"'
    assert moved["status"] == "booked"
    assert moved["slot"] == [{"reference": f"Slot/{new_slot}"}]
    assert moved["start"].startswith("2030-03-11T18:00")
    assert moved["end"].startswith("2030-03-11T18:30")
    assert await slot_status(client, old_slot) == "free"
    assert await slot_status(client, new_slot) == "busy"


async def test_reschedule_with_an_appointment_resource(client: httpx.AsyncClient) -> None:
    old_slot = await open_slot(client, MORNING)
    new_slot = await open_slot(client, AFTERNOON)
    appointment = await booked(client, [old_slot])
    wanted = {**candidate([new_slot], when=AFTERNOON, status="booked"), "id": appointment["id"]}

    response = await operation(client, f"Appointment/{appointment['id']}/$reschedule",
                               resource_part("appointment-resource", wanted))

    assert response.status_code == 200, response.text
    assert response.json()["start"].startswith("2030-03-11T18:00")
    assert await slot_status(client, old_slot) == "free"
    assert await slot_status(client, new_slot) == "busy"


async def test_reschedule_onto_a_taken_slot_is_409_and_keeps_the_old_time(
        client: httpx.AsyncClient) -> None:
    old_slot = await open_slot(client, MORNING)
    taken = await open_slot(client, AFTERNOON, status="busy")
    appointment = await booked(client, [old_slot])
    before = await versions_written(client)

    response = await operation(client, f"Appointment/{appointment['id']}/$reschedule",
                               reference("slot", f"Slot/{taken}"))

    outcome_issues(response, 409)
    assert await versions_written(client) == before
    assert (await read(client, f"Appointment/{appointment['id']}"))["start"] == MORNING[0]
    assert await slot_status(client, old_slot) == "busy"


@pytest.mark.parametrize(("parts", "name"), [
    ([], "slot"),
    ([reference("slot", "Slot/s1"), resource_part("appointment-resource",
                                                  candidate(["s1"]))], "slot"),
    ([reference("slot", "Schedule/s1")], "slot"),
    ([reference("slot", "Slot/s1"), {"name": "start", "valueInstant": "tomorrow"}], "start"),
    ([reference("slot", "Slot/s1"), {"name": "start", "valueInstant": AFTERNOON[1]},
      {"name": "end", "valueInstant": AFTERNOON[0]}], "end"),
])
async def test_reschedule_with_invalid_parameters_is_400_naming_the_parameter(
        client: httpx.AsyncClient, parts: list[Resource], name: str) -> None:
    slot_id = await open_slot(client)
    appointment = await booked(client, [slot_id])
    before = await versions_written(client)

    response = await operation(client, f"Appointment/{appointment['id']}/$reschedule", *parts)

    issues = outcome_issues(response, 400)
    assert f"Parameters.parameter.where(name='{name}')" in expressions(issues)
    assert await versions_written(client) == before


# --- declared and advertised ----------------------------------------------------------------

@pytest.mark.parametrize("code", OPERATIONS)
async def test_each_operation_is_advertised_and_its_definition_served(
        client: httpx.AsyncClient, code: str) -> None:
    url = f"http://fhir-scheduler.org/fhir/OperationDefinition/Appointment-{code}"
    statement = await read(client, "metadata")
    appointment = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Appointment")
    assert {"name": code, "definition": url} in appointment["operation"]

    definition = await read(client, f"OperationDefinition/Appointment-{code}")

    assert definition["url"] == url and definition["code"] == code
    assert definition["resource"] == ["Appointment"] and definition["system"] is False
    assert definition["instance"] is (code == "reschedule")
    assert definition["type"] is (code != "reschedule")
    inputs = {p["name"] for p in definition["parameter"] if p["use"] == "in"}
    assert inputs and {"return"} == {p["name"] for p in definition["parameter"]
                                     if p["use"] == "out"}
