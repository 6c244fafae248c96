"""The audit trail: every FHIR interaction and every refusal leaves one BALP AuditEvent that
administrators can search and nobody can change; failures are counted at `/metrics`."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.e2e.audit_support import audit_events, audit_flushed
from tests.e2e.checks import created, outcome_issues
from tests.e2e.factories import make_appointment, make_patient
from tests.e2e.tokens import bearer, mint

DOCTOR = bearer(mint("user/*.cruds", role="doctor", fhir_user="Practitioner/dr-a"))
MARIA = bearer(mint("patient/*.cruds", role="patient", fhir_user="Patient/maria",
                    patient="maria"))
NO_AUDIT_SCOPE = bearer(mint("user/*.cruds", role="staff", fhir_user="Practitioner/desk"))


def subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def entity_refs(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", []) if "what" in e]


def patients_of(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", [])
            if e.get("role", {}).get("code") == "1"]


def user_of(event: dict[str, Any]) -> str | None:
    users = [a["who"].get("reference") for a in event["agent"] if a["requestor"]
             and "reference" in a.get("who", {})]
    return users[0] if users else None


async def only_event(client: httpx.AsyncClient, kind: str) -> dict[str, Any]:
    [event] = [e for e in await audit_events(client) if subtype(e) == kind]
    return event


async def test_a_read_is_audited_with_balp_type_action_outcome_agents_and_entity(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())
    assert (await client.get(f"Patient/{patient['id']}")).status_code == 200

    event = await only_event(client, "read")
    assert event["type"]["code"] == "rest"
    assert event["type"]["system"] == "http://terminology.hl7.org/CodeSystem/audit-event-type"
    assert event["subtype"][0]["system"] == "http://hl7.org/fhir/restful-interaction"
    assert (event["action"], event["outcome"]) == ("R", "0")
    assert entity_refs(event)[0] == f"Patient/{patient['id']}/_history/1"
    assert patients_of(event) == [f"Patient/{patient['id']}"]
    client_agent = event["agent"][0]
    assert client_agent["who"]["identifier"]["value"] == "tests"
    assert client_agent["requestor"] is True  # no fhirUser: the client app asked
    assert client_agent["network"]["address"]
    assert any(a["who"].get("display") == "fhir-scheduler" for a in event["agent"])
    assert event["source"]["observer"]["identifier"]["value"] == "http://testserver/fhir"


async def test_a_search_records_its_query_base64_encoded(client: httpx.AsyncClient) -> None:
    query = "patient=Patient/maria&status=booked"
    assert (await client.get(f"Appointment?{query}")).status_code == 200

    event = await only_event(client, "search-type")
    assert event["action"] == "E"
    [query_entity] = [e for e in event["entity"] if "query" in e]
    assert base64.b64decode(query_entity["query"]).decode() == query
    assert patients_of(event) == ["Patient/maria"]


async def test_a_create_names_the_new_resource(client: httpx.AsyncClient) -> None:
    new = await created(client, make_patient())

    event = await only_event(client, "create")
    assert (event["action"], event["outcome"], event["outcomeDesc"]) == ("C", "0", "201 Created")
    assert entity_refs(event)[0] == f"Patient/{new['id']}/_history/1"


async def test_reads_and_minimal_writes_name_the_patients_the_resource_refers_to(
        client: httpx.AsyncClient) -> None:
    appointment = make_appointment(patient="Patient/pat1")
    appointment["participant"].append({"actor": {"reference": "Patient/pat2"},
                                       "status": "accepted"})
    written = await client.post("Appointment", json=appointment,
                                headers={"Prefer": "return=minimal"})
    assert written.status_code == 201 and written.content == b""
    new_id = written.headers["Location"].split("/Appointment/")[1].split("/")[0]
    assert (await client.get(f"Appointment/{new_id}")).status_code == 200

    create, read = await only_event(client, "create"), await only_event(client, "read")
    for event in (create, read):
        assert entity_refs(event)[0] == f"Appointment/{new_id}/_history/1"
        assert patients_of(event) == ["Patient/pat1", "Patient/pat2"]


async def test_requests_without_a_valid_token_are_audited_as_minor_failures(
        client: httpx.AsyncClient) -> None:
    missing = await client.get("Patient/p1", headers={"Authorization": ""})
    tampered = await client.get("Patient/p1", headers={"Authorization": "Bearer not-a-jwt"})
    assert (missing.status_code, tampered.status_code) == (401, 401)

    events = await audit_events(client)
    assert [(subtype(e), e["outcome"]) for e in events] == [("read", "4"), ("read", "4")]
    assert all(e["outcomeDesc"].startswith("401") for e in events)
    assert all(user_of(e) is None and "who" not in e["agent"][0] for e in events)
    assert all(entity_refs(e) == ["Patient/p1", "Patient/p1"] for e in events)


async def test_a_refused_write_is_audited_with_the_user_who_tried(
        client: httpx.AsyncClient) -> None:
    outcome_issues(await client.post("Patient", json=make_patient(), headers=DOCTOR), 403)

    event = await only_event(client, "create")
    assert (event["action"], event["outcome"]) == ("C", "4")
    assert event["outcomeDesc"].startswith("403")
    assert user_of(event) == "Practitioner/dr-a"
    assert event["agent"][0]["requestor"] is False  # the user asked, through the client


async def test_patient_context_access_names_the_patient_and_admins_find_it(
        client: httpx.AsyncClient) -> None:
    maria = {**make_patient(), "id": "maria"}
    assert (await client.put("Patient/maria", json=maria)).status_code == 201
    assert (await client.get("Patient/maria", headers=MARIA)).status_code == 200
    assert (await client.get("Appointment", headers=MARIA)).status_code == 200
    await audit_flushed(client)

    by_maria = await audit_events(client, "agent=Patient/maria")
    assert sorted(subtype(e) for e in by_maria) == ["read", "search-type"]
    assert all(patients_of(e) == ["Patient/maria"] for e in by_maria)
    about_maria = await audit_events(client, "patient=Patient/maria")
    # ... and the administrator's own audit search above, which named her.
    assert sorted(subtype(e) for e in about_maria) == [
        "read", "search-type", "search-type", "update"]
    assert "AuditEvent?agent=Patient/maria&_count=1000" in {
        e["entity"][0].get("description") for e in about_maria}
    [first] = await audit_events(client, "patient=Patient/maria&date=ge2000-01-01&subtype=update")
    assert first["outcome"] == "0"
    assert await audit_events(client, "patient=Patient/someone-else") == []


async def test_only_roles_with_the_audit_trail_may_read_it(client: httpx.AsyncClient) -> None:
    await client.get("Patient?_id=x")
    [event] = await audit_events(client)

    for headers in (MARIA, NO_AUDIT_SCOPE):
        outcome_issues(await client.get("AuditEvent", headers=headers), 403)
        outcome_issues(await client.get(f"AuditEvent/{event['id']}", headers=headers), 403)
    assert (await client.get(f"AuditEvent/{event['id']}")).json()["id"] == event["id"]


async def test_nobody_writes_audit_events_through_the_api(client: httpx.AsyncClient) -> None:
    await client.get("Patient?_id=x")
    [event] = await audit_events(client)
    forged = {**event, "outcome": "0", "outcomeDesc": "nothing happened"}

    for response in (await client.put(f"AuditEvent/{event['id']}", json=forged),
                     await client.delete(f"AuditEvent/{event['id']}"),
                     await client.post("AuditEvent", json=forged),
                     await client.patch(f"AuditEvent/{event['id']}", content=b"[]",
                                        headers={"Content-Type": "application/json-patch+json"})):
        assert outcome_issues(response, 405)[0]["code"] == "not-supported"
    stored = await client.get(f"AuditEvent/{event['id']}")
    assert stored.json() == event
    for path in (f"AuditEvent/{event['id']}/_history", f"AuditEvent/{event['id']}/_history/1",
                 "AuditEvent/_history"):  # one immutable entry each: no versions to list
        assert outcome_issues(await client.get(path), 405)[0]["code"] == "not-supported"


async def test_metrics_count_failed_authentications_and_authorizations(
        client: httpx.AsyncClient) -> None:
    before = await counters(client)
    await client.get("Patient", headers={"Authorization": "Bearer not-a-jwt"})
    await client.get("Patient", headers={"Authorization": "Bearer not-a-jwt"})
    await client.post("Patient", json=make_patient(), headers=DOCTOR)
    after = await counters(client)

    failed = 'fhir_auth_failures_total{reason="malformed"}'
    denied = 'fhir_authz_denials_total{interaction="create",resource_type="Patient"}'
    assert after[failed] - before.get(failed, 0) == 2
    assert after[denied] - before.get(denied, 0) == 1
    assert "fhir_audit_events_dropped_total" in after


async def counters(client: httpx.AsyncClient) -> dict[str, float]:
    """The Prometheus samples at `/metrics` (public, outside the FHIR base)."""
    response = await client.get("http://testserver/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
