"""Refused writes: the right status, an OperationOutcome that says why, and nothing written."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.checks import created, expressions, outcome_issues, versions_written
from tests.e2e.factories import make_appointment, make_patient, make_practitioner, make_slot


def appointment_with(**changes: Any) -> dict[str, Any]:
    """A valid appointment with some elements replaced (or removed, given None)."""
    resource = make_appointment(**{k: v for k, v in changes.items() if v is not None})
    for name in (k for k, v in changes.items() if v is None):
        del resource[name]
    return resource


async def refused_everywhere(client: httpx.AsyncClient, resource: dict[str, Any],
                             status: int) -> list[dict[str, Any]]:
    """POST `resource` and PUT it over an existing one: both refused, nothing changes.

    Returns the issues of the POST's OperationOutcome.
    """
    resource_type = resource["resourceType"]
    existing = await created(client, make_appointment() if resource_type == "Appointment"
                             else make_slot())
    before = await versions_written(client)

    posted = outcome_issues(await client.post(resource_type, json=resource), status)
    put = await client.put(f"{resource_type}/{existing['id']}",
                           json={**resource, "id": existing["id"]})

    assert expressions(outcome_issues(put, status)) == expressions(posted)
    assert await versions_written(client) == before
    assert (await client.get(f"{resource_type}/{existing['id']}")).json() == existing
    return posted


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())
    before = await versions_written(client)
    broken = b'{"resourceType": "Patient", "name": [{"family": "Okafor"}'
    headers = {"Content-Type": "application/fhir+json"}

    outcome_issues(await client.post("Patient", content=broken, headers=headers), 400)
    outcome_issues(await client.put(f"Patient/{patient['id']}", content=broken,
                                    headers=headers), 400)

    assert await versions_written(client) == before


@pytest.mark.parametrize("body", [[], "Patient", 42, {"name": [{"family": "Okafor"}]}],
                         ids=["array", "string", "number", "no-resourceType"])
async def test_a_body_that_is_not_a_resource_is_400(client: httpx.AsyncClient,
                                                    body: Any) -> None:
    outcome_issues(await client.post("Patient", json=body), 400)

    assert await versions_written(client) == 0


async def test_a_resource_type_that_differs_from_the_url_is_400(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    issues = outcome_issues(await client.post("Patient", json=make_practitioner()), 400)
    put = await client.put(f"Patient/{patient['id']}",
                           json={**make_practitioner(), "id": patient["id"]})

    assert expressions(issues) == {"resourceType"}
    outcome_issues(put, 400)
    assert await versions_written(client) == 1
    assert (await client.get("Practitioner/_history")).json()["total"] == 0


async def test_put_with_a_body_id_other_than_the_url_id_is_400(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    response = await client.put(f"Patient/{patient['id']}",
                                json={**patient, "id": "someone-else", "active": False})

    assert expressions(outcome_issues(response, 400)) == {"Patient.id"}
    assert (await client.get(f"Patient/{patient['id']}")).json() == patient
    outcome_issues(await client.get("Patient/someone-else"), 404)


async def test_put_without_an_id_in_the_body_is_400(client: httpx.AsyncClient) -> None:
    outcome_issues(await client.put("Patient/p-new", json=make_patient()), 400)

    outcome_issues(await client.get("Patient/p-new"), 404)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "Unicorn"), ("GET", "Unicorn"), ("GET", "Unicorn/1"), ("PUT", "Unicorn/1"),
    ("PATCH", "Unicorn/1"), ("DELETE", "Unicorn/1"), ("GET", "Unicorn/1/_history/1"),
    ("GET", "Unicorn/_history"), ("GET", "Unicorn/1/_history"),
])
async def test_an_unknown_resource_type_is_404(client: httpx.AsyncClient, method: str,
                                               path: str) -> None:
    patching = method == "PATCH"
    body = [] if patching else {"resourceType": "Unicorn", "id": "1"}
    content_type = "application/json-patch+json" if patching else "application/fhir+json"

    response = await client.request(
        method, path, content=orjson.dumps(body) if method in ("POST", "PUT", "PATCH") else None,
        headers={"Content-Type": content_type})

    outcome_issues(response, 404)
    assert await versions_written(client) == 0


async def test_an_unknown_appointment_status_is_422_at_appointment_status(
        client: httpx.AsyncClient) -> None:
    issues = await refused_everywhere(client, appointment_with(status="bogus"), 422)

    assert expressions(issues) == {"Appointment.status"}
    assert issues[0]["severity"] == "error"


async def test_an_empty_participant_list_is_422_naming_appointment_participant(
        client: httpx.AsyncClient) -> None:
    issues = await refused_everywhere(client, appointment_with(participant=[]), 422)

    assert expressions(issues) == {"Appointment.participant"}


async def test_a_participant_without_status_is_422(client: httpx.AsyncClient) -> None:
    appointment = make_appointment()
    del appointment["participant"][1]["status"]

    issues = await refused_everywhere(client, appointment, 422)

    assert expressions(issues) == {"Appointment.participant[1].status"}


async def test_a_slot_whose_schedule_is_a_patient_is_422(client: httpx.AsyncClient) -> None:
    slot = make_slot(schedule={"reference": "Patient/pat1"})

    issues = await refused_everywhere(client, slot, 422)

    assert expressions(issues) == {"Slot.schedule"}


async def test_a_start_without_an_end_violates_app_2(client: httpx.AsyncClient) -> None:
    issues = await refused_everywhere(client, appointment_with(end=None), 422)

    diagnostics = " ".join(i.get("diagnostics", "") for i in issues)
    assert "app-2" in diagnostics


async def test_a_booked_appointment_without_times_violates_app_3(
        client: httpx.AsyncClient) -> None:
    issues = await refused_everywhere(client, appointment_with(start=None, end=None), 422)

    assert [i["diagnostics"].split(":")[0] for i in issues] == ["app-3"]
    assert expressions(issues) == {"Appointment"}


async def test_a_proposed_appointment_without_times_is_accepted(
        client: httpx.AsyncClient) -> None:
    response = await client.post("Appointment", json=appointment_with(
        status="proposed", start=None, end=None))

    assert response.status_code == 201, response.text


async def test_every_problem_of_a_resource_is_reported_at_once(
        client: httpx.AsyncClient) -> None:
    appointment = appointment_with(status="bogus", end=None, colour="blue")

    issues = outcome_issues(await client.post("Appointment", json=appointment), 422)

    assert {"Appointment.status", "Appointment.colour", "Appointment"} <= expressions(issues)
    assert await versions_written(client) == 0
