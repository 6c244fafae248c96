"""Batch and transaction Bundles posted to the FHIR base."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.e2e.checks import created, outcome_issues, versions_written
from tests.e2e.factories import (
    make_appointment,
    make_communication_request,
    make_patient,
    make_practitioner,
    make_schedule,
    make_slot,
)

BASE = "http://testserver/fhir"


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None,
         **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource,
                             "request": {"method": "POST", "url": resource["resourceType"],
                                         **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def put(resource: dict[str, Any], **request: str) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": url, **request}}


def get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def delete(url: str) -> dict[str, Any]:
    return {"request": {"method": "DELETE", "url": url}}


def urn() -> str:
    return f"urn:uuid:{uuid4()}"


def statuses(response: httpx.Response) -> list[str]:
    return [e["response"]["status"].split()[0] for e in response.json()["entry"]]


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """POST a Bundle to the base itself (no trailing slash), as FHIR clients do."""
    return await client.post(BASE, json=body)


async def test_a_batch_applies_every_entry_that_succeeds_and_reports_each(
        client: httpx.AsyncClient) -> None:
    response = await submit(client, bundle(
        "batch",
        post(make_patient(family="Okafor")),
        post(make_appointment(status="bogus")),
        put(make_practitioner(id="dr-reyes")),
        get("Patient/never-was"),
    ))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "batch-response"
    assert statuses(response) == ["201", "422", "201", "404"]
    created_patient, refused, upserted, missing = body["entry"]
    assert created_patient["response"]["location"].startswith(f"{BASE}/Patient/")
    assert created_patient["response"]["etag"] == 'W/"1"'
    patient = await client.get(created_patient["response"]["location"])
    assert patient.json()["name"][0]["family"] == "Okafor"
    assert refused["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert refused["response"]["outcome"]["issue"][0]["expression"] == ["Appointment.status"]
    assert (await client.get("Appointment/_history")).json()["total"] == 0
    assert upserted["response"]["location"] == f"{BASE}/Practitioner/dr-reyes/_history/1"
    assert (await client.get("Practitioner/dr-reyes")).status_code == 200
    assert missing["response"]["outcome"]["issue"][0]["code"] == "not-found"


async def test_a_batch_reads_and_searches_with_get_entries(client: httpx.AsyncClient) -> None:
    okafor = await created(client, make_patient(family="Okafor"))
    await created(client, make_patient(family="Reyes"))

    response = await submit(client, bundle(
        "batch",
        get(f"Patient/{okafor['id']}"),
        get("Patient?family=Okafor"),
        get(f"{BASE}/Patient/{okafor['id']}/_history/1"),
    ))

    assert response.status_code == 200, response.text
    assert statuses(response) == ["200", "200", "200"]
    read, search, vread = response.json()["entry"]
    assert read["resource"] == okafor
    assert read["response"]["etag"] == 'W/"1"'
    assert search["resource"]["type"] == "searchset"
    assert search["resource"]["total"] == 1
    assert search["resource"]["entry"][0]["resource"] == okafor
    assert vread["resource"] == okafor


async def test_a_batch_put_with_a_stale_if_match_fails_alone(client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())
    await client.put(f"Patient/{patient['id']}", json={**patient, "active": False})

    response = await submit(client, bundle(
        "batch",
        put({**patient, "gender": "male"}, ifMatch='W/"1"'),
        post(make_practitioner()),
    ))

    assert statuses(response) == ["412", "201"]
    current = (await client.get(f"Patient/{patient['id']}")).json()
    assert current["gender"] == "female"
    assert current["meta"]["versionId"] == "2"


async def test_a_transaction_rewrites_urn_references_to_the_ids_it_assigns(
        client: httpx.AsyncClient) -> None:
    patient_urn, schedule_urn = urn(), urn()

    response = await submit(client, bundle(
        "transaction",
        post(make_communication_request(patient=patient_urn)),
        post(make_patient(family="Okafor"), full_url=patient_urn),
        post(make_schedule(actor="Practitioner/dr-reyes"), full_url=schedule_urn),
        post({**make_slot(), "schedule": {"reference": schedule_urn}}),
    ))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    assert statuses(response) == ["201", "201", "201", "201"]
    request_entry, patient_entry, schedule_entry, slot_entry = body["entry"]
    patient_id = patient_entry["resource"]["id"]
    assert patient_entry["response"]["location"] == f"{BASE}/Patient/{patient_id}/_history/1"
    request = (await client.get(request_entry["response"]["location"])).json()
    assert request["subject"]["reference"] == f"Patient/{patient_id}"
    assert (await client.get(f"Patient/{patient_id}")).json()["name"][0]["family"] == "Okafor"
    slot = (await client.get(slot_entry["response"]["location"])).json()
    assert slot["schedule"]["reference"] == f"Schedule/{schedule_entry['resource']['id']}"
    assert patient_urn not in response.text
    assert schedule_urn not in response.text


async def test_a_transaction_with_one_invalid_entry_writes_nothing(
        client: httpx.AsyncClient) -> None:
    existing = await created(client, make_patient(family="Existing"))
    before = await versions_written(client)
    patient_urn = urn()

    response = await submit(client, bundle(
        "transaction",
        post(make_patient(family="Okafor"), full_url=patient_urn),
        put(make_practitioner(id="dr-reyes")),
        delete(f"Patient/{existing['id']}"),
        post({**make_communication_request(patient=patient_urn), "status": "bogus"}),
    ))

    issues = outcome_issues(response, 422)
    assert "CommunicationRequest.status" in issues[0]["expression"]
    assert "Bundle.entry[3]" in issues[0]["diagnostics"]
    assert await versions_written(client) == before
    assert (await client.get("Patient", params={"family": "Okafor"})).json()["total"] == 0
    outcome_issues(await client.get("Practitioner/dr-reyes"), 404)
    assert (await client.get(f"Patient/{existing['id']}")).json() == existing


async def test_a_transaction_with_a_stale_if_match_is_412_and_writes_nothing(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())
    await client.put(f"Patient/{patient['id']}", json={**patient, "active": False})
    before = await versions_written(client)

    response = await submit(client, bundle(
        "transaction",
        post(make_practitioner(family="Reyes")),
        put({**patient, "gender": "male"}, ifMatch='W/"1"'),
    ))

    outcome_issues(response, 412)
    assert await versions_written(client) == before
    assert (await client.get("Practitioner/_history")).json()["total"] == 0
    assert (await client.get(f"Patient/{patient['id']}")).json()["gender"] == "female"


async def test_a_transaction_with_the_current_if_match_updates(client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    response = await submit(client, bundle(
        "transaction", put({**patient, "gender": "male"}, ifMatch='W/"1"')))

    assert statuses(response) == ["200"]
    assert response.json()["entry"][0]["response"]["etag"] == 'W/"2"'
    assert (await client.get(f"Patient/{patient['id']}")).json()["gender"] == "male"


async def test_a_transaction_deletes_updates_and_reads(client: httpx.AsyncClient) -> None:
    doomed = await created(client, make_patient(family="Doomed"))
    kept = await created(client, make_patient(family="Kept"))

    response = await submit(client, bundle(
        "transaction",
        delete(f"Patient/{doomed['id']}"),
        put({**kept, "active": False}),
        get(f"Patient/{kept['id']}"),
    ))

    assert response.status_code == 200, response.text
    assert statuses(response) == ["204", "200", "200"]
    outcome_issues(await client.get(f"Patient/{doomed['id']}"), 410)
    read = response.json()["entry"][2]["resource"]
    assert read["active"] is False
    assert read["meta"]["versionId"] == "2"


async def test_a_transaction_if_none_exist_reuses_the_match_for_references(
        client: httpx.AsyncClient) -> None:
    existing = await created(client, make_patient(family="Okafor"))
    patient_urn = urn()

    response = await submit(client, bundle(
        "transaction",
        post(make_patient(family="Okafor"), full_url=patient_urn, ifNoneExist="family=Okafor"),
        post(make_communication_request(patient=patient_urn)),
    ))

    assert response.status_code == 200, response.text
    assert statuses(response) == ["200", "201"]
    assert (await client.get("Patient/_history")).json()["total"] == 1
    location = response.json()["entry"][1]["response"]["location"]
    request = (await client.get(location)).json()
    assert request["subject"]["reference"] == f"Patient/{existing['id']}"


async def test_a_transaction_changing_one_resource_twice_is_refused(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    response = await submit(client, bundle(
        "transaction",
        put({**patient, "gender": "male"}),
        delete(f"Patient/{patient['id']}"),
    ))

    outcome_issues(response, 400)
    assert (await client.get(f"Patient/{patient['id']}")).json() == patient


async def test_the_base_with_a_trailing_slash_takes_bundles_too(
        client: httpx.AsyncClient) -> None:
    response = await client.post(f"{BASE}/", json=bundle("batch", post(make_patient())))

    assert statuses(response) == ["201"]


@pytest.mark.parametrize("body", [
    {"resourceType": "Bundle", "type": "collection", "entry": []},
    {"resourceType": "Patient"},
    {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": make_patient()}]},
], ids=["collection", "not-a-bundle", "entry-without-request"])
async def test_only_batch_and_transaction_bundles_are_processed(client: httpx.AsyncClient,
                                                                body: dict[str, Any]) -> None:
    outcome_issues(await submit(client, body), 400)

    assert await versions_written(client) == 0


async def test_a_batch_delete_with_a_stale_if_match_is_412_and_deletes_nothing(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())
    await client.put(f"Patient/{patient['id']}", json={**patient, "active": False})

    response = await submit(client, bundle(
        "batch", {"request": {"method": "DELETE", "url": f"Patient/{patient['id']}",
                              "ifMatch": 'W/"1"'}}))

    assert statuses(response) == ["412"]
    assert (await client.get(f"Patient/{patient['id']}")).status_code == 200


@pytest.mark.parametrize(("read", "status"), [
    (get("Patient/never-was"), 404),
    (get("Patient/never-was/_history/1"), 404),
    (get("Patient?no-such-parameter=1"), 400),
    (get("Unicorn/1"), 404),
], ids=["read", "vread", "search", "unknown-type"])
async def test_a_transaction_whose_get_cannot_succeed_writes_nothing(
        client: httpx.AsyncClient, read: dict[str, Any], status: int) -> None:
    response = await submit(client, bundle("transaction", post(make_practitioner()), read))

    outcome_issues(response, status)
    assert await versions_written(client) == 0


async def test_a_transaction_reading_what_it_deletes_is_410_and_writes_nothing(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    response = await submit(client, bundle(
        "transaction", delete(f"Patient/{patient['id']}"), get(f"Patient/{patient['id']}")))

    outcome_issues(response, 410)
    assert (await client.get(f"Patient/{patient['id']}")).json() == patient


async def test_a_transaction_reads_what_it_creates_with_a_client_id(
        client: httpx.AsyncClient) -> None:
    response = await submit(client, bundle(
        "transaction", get("Practitioner/dr-reyes"), put(make_practitioner(id="dr-reyes")),
        get("Practitioner/dr-reyes/_history/1"), get("Practitioner?family=Reyes")))

    assert response.status_code == 200, response.text
    assert statuses(response) == ["200", "201", "200", "200"]
    read, _, vread, search = response.json()["entry"]
    assert read["resource"]["id"] == vread["resource"]["id"] == "dr-reyes"
    assert search["resource"]["total"] == 1
