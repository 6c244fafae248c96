"""A doctor over HTTP: own appointments, the patients they see, their own availability.

The clinic of `test_security.clinic`: dr-a sees maria (appt-maria), dr-b sees james.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.checks import outcome_issues
from tests.e2e.test_booking_race import appointment
from tests.e2e.test_security import ADMIN, DOCTOR, STAFF, clinic, put
from tests.e2e.tokens import bearer, mint

DOCTOR_B = bearer(mint("user/*.cruds", role="doctor", fhir_user="Practitioner/dr-b"))


def ids(bundle: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["resource"]["resourceType"], e["resource"]["id"])
            for e in bundle.get("entry", [])}


async def test_a_doctor_reads_only_the_patients_they_see(client: httpx.AsyncClient) -> None:
    await clinic(client)

    seen = await client.get("Patient/maria", headers=DOCTOR)
    unseen = [await client.get(path, headers=DOCTOR) for path in (
        "Patient/james", "Patient/james/_history/1", "Patient/james/_history", "Patient/nobody")]
    by_staff = await client.get("Patient/james", headers=STAFF)

    assert seen.status_code == 200, seen.text
    for response in unseen:
        assert outcome_issues(response, 404)[0]["code"] == "not-found"
    assert by_staff.status_code == 200


async def test_a_new_appointment_lets_the_doctor_read_the_patient_at_once(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    assert (await client.get("Patient/james", headers=DOCTOR)).status_code == 404

    booked = await client.post("Appointment", headers=DOCTOR, json=appointment(
        [], ["Patient/james", "Practitioner/dr-a"], start="12:00", end="12:30"))

    assert booked.status_code == 201, booked.text
    assert (await client.get("Patient/james", headers=DOCTOR)).status_code == 200
    found = (await client.get("Patient", headers=DOCTOR)).json()
    assert ids(found) == {("Patient", "maria"), ("Patient", "james")}


async def test_a_doctors_patient_search_is_narrowed_to_seen_patients(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    await put(client, {"resourceType": "Patient", "id": "maria", "name": [{"family": "Garcia"}]},
              {"resourceType": "Patient", "id": "james", "name": [{"family": "Garcia"}]})

    everyone = (await client.get("Patient", headers=DOCTOR)).json()
    by_name = (await client.get("Patient", headers=DOCTOR, params={"name": "Garcia"})).json()
    by_id = (await client.get("Patient", headers=DOCTOR, params={"_id": "james"})).json()
    posted = (await client.post("Patient/_search", headers=DOCTOR,
                                data={"name": "Garcia"})).json()
    for_b = (await client.get("Patient", headers=DOCTOR_B, params={"name": "Garcia"})).json()

    assert ids(everyone) == ids(by_name) == ids(posted) == {("Patient", "maria")}
    assert by_name["total"] == 1 and by_id["total"] == 0
    assert ids(for_b) == {("Patient", "james")}


async def test_a_doctor_sees_only_appointments_they_take_part_in(
        client: httpx.AsyncClient) -> None:
    await clinic(client)

    found = (await client.get("Appointment", headers=DOCTOR, params={
        "_include": "Appointment:patient"})).json()
    own = await client.get("Appointment/appt-maria", headers=DOCTOR)
    other = await client.get("Appointment/appt-james", headers=DOCTOR)
    chained = (await client.get("Appointment", headers=DOCTOR, params={
        "patient:Patient._id": "james"})).json()

    assert ids(found) == {("Appointment", "appt-maria"), ("Patient", "maria")}
    assert own.status_code == 200
    assert outcome_issues(other, 404)[0]["code"] == "not-found"
    assert chained["total"] == 0


async def test_a_doctor_includes_only_patients_they_see(client: httpx.AsyncClient) -> None:
    await clinic(client)
    # A slot of dr-a's schedule that james's appointment with dr-b points at.
    await put(client, {**appointment(["slot-a"], ["Patient/james", "Practitioner/dr-b"]),
                       "id": "appt-james-2"})

    found = (await client.get("Slot", headers=DOCTOR, params={
        "_id": "slot-a", "_revinclude": "Appointment:slot",
        "_include:iterate": "Appointment:patient"})).json()

    assert ids(found) == {("Slot", "slot-a")}


async def test_a_doctor_books_and_cancels_only_their_own_appointments(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    for_dr_b = appointment(["slot-b"], ["Patient/maria", "Practitioner/dr-b"])
    james = (await client.get("Appointment/appt-james")).json()

    booked_for_other = await client.post("Appointment", headers=DOCTOR, json=for_dr_b)
    held_for_other = await client.post("Appointment/$hold", headers=DOCTOR, json={
        "resourceType": "Parameters", "parameter": [
            {"name": "appointment-resource", "resource": for_dr_b}]})
    cancelled_other = await client.put("Appointment/appt-james", headers=DOCTOR, json={
        **james, "status": "cancelled"})
    taken_over = await client.put("Appointment/appt-james", headers=DOCTOR, json={
        **james, "participant": [{"actor": {"reference": "Practitioner/dr-a"},
                                  "status": "accepted"}]})
    cancelled_own = await client.put("Appointment/appt-maria", headers=DOCTOR, json={
        **(await client.get("Appointment/appt-maria")).json(), "status": "cancelled"})

    for response in (booked_for_other, held_for_other, cancelled_other, taken_over):
        assert outcome_issues(response, 403)[0]["code"] == "forbidden"
    assert cancelled_own.status_code == 200, cancelled_own.text
    assert (await client.get("Slot/slot-b")).json()["status"] == "free"
    assert (await client.get("Appointment/appt-james")).json()["meta"]["versionId"] == "1"


async def test_a_doctor_cannot_create_or_take_over_another_doctors_schedule(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    schedule_b = (await client.get("Schedule/sch-dr-b")).json()

    created_for_b = await client.post("Schedule", headers=DOCTOR, json={
        "resourceType": "Schedule", "actor": [{"reference": "Practitioner/dr-b"}]})
    taken_over = await client.put("Schedule/sch-dr-b", headers=DOCTOR, json={
        **schedule_b, "actor": [{"reference": "Practitioner/dr-a"}]})
    own = await client.post("Schedule", headers=DOCTOR, json={
        "resourceType": "Schedule", "actor": [{"reference": "Practitioner/dr-a"}]})

    for response in (created_for_b, taken_over):
        assert outcome_issues(response, 403)[0]["code"] == "forbidden"
    assert own.status_code == 201, own.text
    after = (await client.get("Schedule", headers=ADMIN, params={
        "actor": "Practitioner/dr-b"})).json()
    assert after["total"] == 1
