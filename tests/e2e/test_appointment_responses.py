"""AppointmentResponse over REST moves its Appointment on, on both stores: participant
statuses stay in step, all required accepting books, a required decline cancels and frees
the slots, and a stranger's response is 422 with nothing written."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.checks import created, outcome_issues, versions_written
from tests.e2e.factories import make_appointment_response
from tests.e2e.test_appointment_operations import (
    PATIENT,
    PRACTITIONER,
    booked,
    candidate,
    hold,
    open_slot,
    read,
    slot_status,
)

Resource = dict[str, Any]


async def respond(client: httpx.AsyncClient, appointment_id: str, actor: str,
                  status: str) -> httpx.Response:
    return await client.post("AppointmentResponse", json=make_appointment_response(
        f"Appointment/{appointment_id}", actor, status))


async def responded(client: httpx.AsyncClient, appointment_id: str, actor: str,
                    status: str) -> Resource:
    response = await respond(client, appointment_id, actor, status)
    assert response.status_code == 201, response.text
    return await read(client, f"Appointment/{appointment_id}")


def participant_statuses(appointment: Resource) -> dict[str, str]:
    return {p["actor"]["reference"]: p["status"] for p in appointment["participant"]}


async def test_all_required_accepting_books_the_held_appointment(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    held = await hold(client, [slot_id])

    after_patient = await responded(client, held["id"], PATIENT, "accepted")

    assert after_patient["status"] == "pending"
    assert participant_statuses(after_patient) == {PATIENT: "accepted",
                                                   PRACTITIONER: "needs-action"}
    assert await slot_status(client, slot_id) == "busy-tentative"

    after_both = await responded(client, held["id"], PRACTITIONER, "accepted")

    assert after_both["status"] == "booked"
    assert participant_statuses(after_both) == {PATIENT: "accepted", PRACTITIONER: "accepted"}
    assert await slot_status(client, slot_id) == "busy"


async def test_tentative_is_recorded_without_booking(client: httpx.AsyncClient) -> None:
    proposed = await created(client, candidate([]))

    after = await responded(client, proposed["id"], PRACTITIONER, "tentative")

    assert after["status"] == "proposed"
    assert participant_statuses(after)[PRACTITIONER] == "tentative"


async def test_a_required_decline_cancels_and_frees_the_slot(client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    appointment = await booked(client, [slot_id], participant_status="accepted")

    after = await responded(client, appointment["id"], PRACTITIONER, "declined")

    assert after["status"] == "cancelled"
    assert after["cancelationReason"]["text"] == f"Declined by {PRACTITIONER}"
    assert participant_statuses(after)[PRACTITIONER] == "declined"
    assert await slot_status(client, slot_id) == "free"


async def test_an_optional_decline_changes_only_that_participant(
        client: httpx.AsyncClient) -> None:
    interpreter = "Practitioner/interpreter"
    slot_id = await open_slot(client)
    appointment = await booked(client, [slot_id], participant_status="accepted")
    extra = {"actor": {"reference": interpreter}, "required": "optional",
             "status": "needs-action"}
    update = {**appointment, "participant": [*appointment["participant"], extra]}
    assert (await client.put(f"Appointment/{appointment['id']}", json=update)).status_code == 200

    after = await responded(client, appointment["id"], interpreter, "declined")

    assert after["status"] == "booked"
    assert participant_statuses(after)[interpreter] == "declined"
    assert await slot_status(client, slot_id) == "busy"


async def test_a_strangers_response_is_422_and_writes_nothing(client: httpx.AsyncClient) -> None:
    proposed = await created(client, candidate([]))
    before = await versions_written(client)

    response = await respond(client, proposed["id"], "Patient/stranger", "accepted")

    outcome_issues(response, 422)
    assert await versions_written(client) == before
    search = await client.get("AppointmentResponse", params={"_summary": "count"})
    assert search.json()["total"] == 0


async def test_a_response_without_an_actor_is_422_and_writes_nothing(
        client: httpx.AsyncClient) -> None:
    proposed = await created(client, candidate([]))
    anonymous = make_appointment_response(f"Appointment/{proposed['id']}")
    del anonymous["actor"]
    before = await versions_written(client)

    response = await client.post("AppointmentResponse", json=anonymous)

    outcome_issues(response, 422)
    assert await versions_written(client) == before


async def test_a_response_to_an_unknown_appointment_is_kept_as_a_record(
        client: httpx.AsyncClient) -> None:
    response = await respond(client, "elsewhere", PATIENT, "accepted")

    assert response.status_code == 201, response.text
    assert (await client.get("Appointment/elsewhere")).status_code == 404


async def test_a_late_response_to_a_cancelled_appointment_changes_nothing(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)
    appointment = await booked(client, [slot_id], participant_status="accepted")
    cancelled = await responded(client, appointment["id"], PATIENT, "declined")

    response = await respond(client, appointment["id"], PRACTITIONER, "declined")

    assert response.status_code == 201, response.text
    assert await read(client, f"Appointment/{appointment['id']}") == cancelled
    assert await slot_status(client, slot_id) == "free"


async def test_a_response_in_a_transaction_is_applied(client: httpx.AsyncClient) -> None:
    proposed = await created(client, candidate([]))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "AppointmentResponse"},
         "resource": make_appointment_response(f"Appointment/{proposed['id']}", actor,
                                               "accepted")}
        for actor in (PATIENT, PRACTITIONER)]}

    response = await client.post("http://testserver/fhir", json=bundle)

    assert response.status_code == 200, response.text
    after = await read(client, f"Appointment/{proposed['id']}")
    assert participant_statuses(after) == {PATIENT: "accepted", PRACTITIONER: "accepted"}
    assert after["status"] == "booked"
