"""A patient token over HTTP: operations, chains and includes stay inside its compartment.

The clinic of `test_security.clinic`: maria (the token) and james, each with an appointment.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.checks import outcome_issues
from tests.e2e.test_booking_race import appointment
from tests.e2e.test_security import MARIA, clinic, put
from tests.e2e.test_security_doctor import ids
from tests.e2e.tokens import bearer, mint

WINDOW = {"start": "2030-03-04T00:00:00Z", "end": "2030-03-05T00:00:00Z",
          "practitioner": "Practitioner/dr-a"}


def parameters(**parts: Any) -> dict[str, Any]:
    """`Parameters` from `name=resource` (a dict) or `name=reference` (a `Type/id` string)."""
    return {"resourceType": "Parameters", "parameter": [
        {"name": name, "resource": value} if isinstance(value, dict)
        else {"name": name, "valueReference": {"reference": value}}
        for name, value in parts.items()]}


def find_parameters(patient: dict[str, Any]) -> dict[str, Any]:
    """A finding request over `WINDOW` for the given patient parameter."""
    return {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDateTime": WINDOW["start"]},
        {"name": "end", "valueDateTime": WINDOW["end"]},
        {"name": "practitioner", "valueReference": {"reference": WINDOW["practitioner"]}},
        patient]}


async def named_clinic(client: httpx.AsyncClient) -> None:
    """The clinic with names, plus a group appointment maria shares with james (Jones)."""
    await clinic(client)
    await put(client, {"resourceType": "Patient", "id": "maria", "name": [{"family": "Garcia"}]},
              {"resourceType": "Patient", "id": "james", "name": [{"family": "Jones"}]},
              {**appointment([], ["Patient/maria", "Patient/james", "Practitioner/dr-a"],
                             start="13:00", end="13:30"), "id": "appt-group"},
              {"resourceType": "AppointmentResponse", "id": "resp-james",
               "appointment": {"reference": "Appointment/appt-james"},
               "actor": {"reference": "Patient/james"}, "participantStatus": "accepted"})


async def test_finding_times_for_someone_else_is_403(client: httpx.AsyncClient) -> None:
    await clinic(client)

    refused = [
        await client.get("Slot/$find-slots", headers=MARIA, params={
            **WINDOW, "patient-reference": "Patient/james"}),
        await client.get("Appointment/$find", headers=MARIA, params={
            **WINDOW, "patient-reference": "Patient/james"}),
        await client.post("Appointment/$find", headers=MARIA, json=find_parameters(
            {"name": "patient-resource", "resource": {"resourceType": "Patient", "id": "james"}})),
        await client.post("$find-slots", headers=MARIA, json=find_parameters(
            {"name": "patient-reference", "valueReference": {"reference": "Patient/james"}})),
    ]
    own = await client.get("Appointment/$find", headers=MARIA, params={
        **WINDOW, "patient-reference": "Patient/maria"})

    for response in refused:
        assert outcome_issues(response, 403)[0]["code"] == "forbidden"
    assert own.status_code == 200, own.text


async def test_hold_and_book_for_someone_else_are_403_and_write_nothing(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    for_james = appointment(["slot-a"], ["Patient/james", "Practitioner/dr-a"])
    for_both = appointment(["slot-a"], ["Patient/maria", "Patient/james", "Practitioner/dr-a"])
    own = appointment(["slot-a"], ["Patient/maria", "Practitioner/dr-a"])

    refused = [
        await client.post("Appointment/$hold", headers=MARIA,
                          json=parameters(**{"appointment-resource": for_james})),
        await client.post("Appointment/$hold", headers=MARIA,
                          json=parameters(**{"appointment-resource": for_both})),
        await client.post("Appointment/$book", headers=MARIA,
                          json=parameters(**{"appointment-resource": for_both})),
        await client.post("Appointment", headers=MARIA, json=for_both),
        await client.post("Appointment/$hold", headers=MARIA,
                          json=parameters(**{"appointment-reference": "Appointment/appt-james"})),
        await client.post("Appointment/$book", headers=MARIA, json=parameters(**{
            "appointment-resource": {**own, "id": "appt-james"}})),
        await client.post("Appointment/$book", headers=MARIA, json=parameters(**{
            "appointment-resource": own, "cancelled-appt-id": "Appointment/appt-james"})),
    ]

    for response in refused:
        assert outcome_issues(response, 403)[0]["code"] == "forbidden"
    assert (await client.get("Slot/slot-a")).json()["status"] == "free"
    assert (await client.get("Appointment/appt-james")).json()["meta"]["versionId"] == "1"
    assert (await client.get("Appointment", params={"_summary": "count"})).json()["total"] == 2


async def test_a_patients_chained_search_stays_in_the_compartment(
        client: httpx.AsyncClient) -> None:
    await named_clinic(client)

    own_name = (await client.get("Appointment", headers=MARIA, params={
        "patient.name": "Garcia"})).json()
    co_patient = (await client.get("Appointment", headers=MARIA, params={
        "patient.name": "Jones"})).json()
    by_admin = (await client.get("Appointment", params={"patient.name": "Jones"})).json()
    responses = (await client.get("AppointmentResponse", headers=MARIA, params={
        "appointment.patient": "Patient/james"})).json()

    assert ids(own_name) == {("Appointment", "appt-maria"), ("Appointment", "appt-group")}
    # appt-group is maria's, but whether its other patient is called Jones is not hers to learn
    assert co_patient["total"] == 0
    assert by_admin["total"] == 2
    assert responses["total"] == 0


async def test_a_chain_to_a_type_the_token_may_not_search_is_403(
        client: httpx.AsyncClient) -> None:
    await named_clinic(client)
    appointments_only = bearer(mint("patient/Appointment.rs", role="patient",
                                    fhir_user="Patient/maria", patient="maria"))

    refused = await client.get("Appointment", headers=appointments_only, params={
        "patient.name": "Jones"})
    plain = await client.get("Appointment", headers=appointments_only)

    assert "Patient" in outcome_issues(refused, 403)[0]["diagnostics"]
    assert plain.status_code == 200


async def test_includes_never_reveal_other_patients(client: httpx.AsyncClient) -> None:
    await named_clinic(client)
    await put(client, {**appointment(["slot-a"], ["Patient/james", "Practitioner/dr-a"]),
                       "id": "appt-james-slot"})

    slots = (await client.get("Slot", headers=MARIA, params={
        "_revinclude": "Appointment:slot", "_include:iterate": "Appointment:patient"})).json()
    group = (await client.get("Appointment", headers=MARIA, params={
        "_id": "appt-group", "_include": "Appointment:patient",
        "_revinclude": "AppointmentResponse:appointment"})).json()

    assert ids(slots) == {("Slot", "slot-a"), ("Slot", "slot-b")}
    assert ids(group) == {("Appointment", "appt-group"), ("Patient", "maria")}


async def test_a_patient_cancels_but_never_records_the_clinics_statuses(
        client: httpx.AsyncClient) -> None:
    await clinic(client)
    own = (await client.get("Appointment/appt-maria")).json()

    arrived = await client.put("Appointment/appt-maria", headers=MARIA,
                               json={**own, "status": "arrived"})
    no_show = await client.patch(
        "Appointment/appt-maria", headers={**MARIA, "Content-Type": "application/json-patch+json"},
        content=b'[{"op": "replace", "path": "/status", "value": "noshow"}]')
    for response in (arrived, no_show):
        assert "arrived" in response.text or "noshow" in response.text
        assert outcome_issues(response, 403)[0]["code"] == "forbidden"
    assert (await client.get("Appointment/appt-maria")).json()["meta"]["versionId"] == "1"

    cancelled = await client.put("Appointment/appt-maria", headers=MARIA,
                                 json={**own, "status": "cancelled"})
    assert cancelled.status_code == 200, cancelled.text
