"""The outbox over HTTP, on both stores: every booking path stores its messages as
CommunicationRequests; cancel revokes them, reschedule moves them, offsets already past are
skipped, and a proposed follow-up asks the patient to book."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from fhir_server.notify.messages import IDEMPOTENCY_SYSTEM, MESSAGE_KIND_SYSTEM
from tests.e2e.checks import created
from tests.e2e.factories import make_patient
from tests.e2e.test_appointment_operations import (
    MORNING,
    appointment_of,
    candidate,
    open_slot,
    operation,
    reference,
    resource_part,
)

Resource = dict[str, Any]


async def requests_about(client: httpx.AsyncClient, appointment_id: str) -> dict[str, Resource]:
    """The appointment's CommunicationRequests by their outbox key's last part(s)."""
    response = await client.get("CommunicationRequest",
                                params={"about": f"Appointment/{appointment_id}",
                                        "_count": "100"})
    assert response.status_code == 200, response.text
    found = {}
    for entry in response.json().get("entry", []):
        resource = entry["resource"]
        [key] = [i["value"] for i in resource["identifier"] if i["system"] == IDEMPOTENCY_SYSTEM]
        found[key.split("/", 1)[1]] = resource
    return found


def kind(request: Resource) -> str:
    [code] = [c["code"] for c in request["category"][0]["coding"]
              if c["system"] == MESSAGE_KIND_SYSTEM]
    return str(code)


async def book(client: httpx.AsyncClient, when: tuple[str, str] = MORNING) -> Resource:
    await client.put("Patient/pat1", json=make_patient(id="pat1"))
    slot = await open_slot(client, when)
    response = await client.post("Appointment", json=candidate([slot], when=when,
                                                               status="booked",
                                                               participant_status="accepted"))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_booking_stores_a_confirmation_and_a_reminder_per_offset(
        client: httpx.AsyncClient) -> None:
    appointment = await book(client)

    requests = await requests_about(client, appointment["id"])

    assert set(requests) == {"confirmation", "reminder/72h", "reminder/24h", "reminder/2h"}
    reminder = requests["reminder/2h"]
    assert (reminder["status"], kind(reminder)) == ("active", "reminder")
    assert reminder["occurrenceDateTime"].startswith("2030-03-11T12:00:00")
    assert reminder["subject"] == {"reference": "Patient/pat1"}
    assert reminder["recipient"] == [{"reference": "Patient/pat1"}]
    assert reminder["payload"][0]["contentString"]
    due = await client.get("CommunicationRequest", params={
        "status": "active", "occurrence": "le2030-03-10T14:00:00Z", "about":
        f"Appointment/{appointment['id']}"})
    assert {e["resource"]["id"] for e in due.json()["entry"]} == {
        requests["confirmation"]["id"], requests["reminder/72h"]["id"],
        requests["reminder/24h"]["id"]}


async def test_offsets_already_past_at_booking_are_skipped(client: httpx.AsyncClient) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=30)
    when = (start.isoformat().replace("+00:00", "Z"),
            (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"))

    appointment = await book(client, when)

    assert set(await requests_about(client, appointment["id"])) == {
        "confirmation", "reminder/24h", "reminder/2h"}


async def test_cancel_revokes_pending_messages_and_sends_a_notice(
        client: httpx.AsyncClient) -> None:
    appointment = await book(client)

    response = await client.patch(f"Appointment/{appointment['id']}", json=[
        {"op": "replace", "path": "/status", "value": "cancelled"}],
        headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 200, response.text

    requests = await requests_about(client, appointment["id"])
    assert {key: r["status"] for key, r in requests.items()} == {
        "confirmation": "revoked", "reminder/72h": "revoked", "reminder/24h": "revoked",
        "reminder/2h": "revoked", "cancellation": "active"}


async def test_reschedule_moves_pending_reminders_to_the_new_time(
        client: httpx.AsyncClient) -> None:
    appointment = await book(client)
    later = await open_slot(client, ("2030-03-14T14:00:00Z", "2030-03-14T14:30:00Z"))

    response = await operation(client, f"Appointment/{appointment['id']}/$reschedule",
                               {"name": "slot", "valueReference": {
                                   "reference": f"Slot/{later}"}})
    assert response.status_code == 200, response.text

    requests = await requests_about(client, appointment["id"])
    assert requests["reminder/2h"]["occurrenceDateTime"].startswith("2030-03-14T12:00:00")
    assert requests["reminder/72h"]["occurrenceDateTime"].startswith("2030-03-11T14:00:00")
    assert all(r["status"] == "active" for r in requests.values())


async def test_book_operation_plans_the_same_messages(client: httpx.AsyncClient) -> None:
    await client.put("Patient/pat1", json=make_patient(id="pat1"))
    slot = await open_slot(client)

    booked = appointment_of(await operation(client, "Appointment/$book", resource_part(
        "appointment-resource", candidate([slot], participant_status="accepted"))))

    assert set(await requests_about(client, booked["id"])) == {
        "confirmation", "reminder/72h", "reminder/24h", "reminder/2h"}


async def test_a_proposed_follow_up_asks_the_patient_to_book(client: httpx.AsyncClient) -> None:
    proposal = await created(client, {
        "resourceType": "Appointment", "status": "proposed",
        "requestedPeriod": [{"start": "2030-04-01", "end": "2030-04-15"}],
        "participant": [{"actor": {"reference": "Patient/pat1"}, "status": "needs-action"}]})

    requests = await requests_about(client, proposal["id"])

    assert [kind(r) for r in requests.values()] == ["proposal"]


async def test_replacing_an_appointment_revokes_the_old_ones_messages(
        client: httpx.AsyncClient) -> None:
    old = await book(client)
    slot = await open_slot(client, ("2030-03-12T14:00:00Z", "2030-03-12T14:30:00Z"))

    new = appointment_of(await operation(
        client, "Appointment/$book", reference("cancelled-appt-id", f"Appointment/{old['id']}"),
        resource_part("appointment-resource", candidate(
            [slot], when=("2030-03-12T14:00:00Z", "2030-03-12T14:30:00Z"),
            participant_status="accepted"))))

    assert {r["status"] for r in (await requests_about(client, old["id"])).values()} == {
        "revoked"}
    assert kind((await requests_about(client, new["id"]))["confirmation"]) == "change"
