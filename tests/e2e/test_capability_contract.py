"""The CapabilityStatement is a contract: all it advertises works, and nothing else is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_server.fhir.resource_types import SERVER_WRITTEN_TYPES, SUPPORTED_TYPES, is_searchable
from fhir_server.fhir.search.parameters import load_registry
from tests.e2e.audit_support import audit_events
from tests.e2e.search_factories import (
    appointment,
    appointment_response,
    communication,
    communication_request,
    device,
    found,
    healthcare_service,
    location,
    organization,
    patient,
    practitioner,
    practitioner_role,
    put,
    schedule,
    slot,
)

CAPABILITY_DIR = Path(__file__).resolve().parents[2] / "capability"
SLOT_END_URL = "http://fhir-scheduler.org/fhir/SearchParameter/Slot-end"
APPOINTMENT_END_URL = "http://fhir-scheduler.org/fhir/SearchParameter/Appointment-end"

# One valid value per search parameter type ("a reference" is filled in per parameter).
SAMPLE_VALUES = {"token": "x", "date": "2026-01-01", "string": "a", "uri": "http://x"}


def minimal(resource_type: str, id_: str) -> dict[str, Any]:
    """A small valid resource of each supported type (references point at `ref-*` ids)."""
    makers = {
        "Schedule": lambda: schedule(id_, "Practitioner/ref-practitioner"),
        "Slot": lambda: slot(id_, "ref-schedule", "2026-01-01T09:00:00Z",
                             "2026-01-01T09:30:00Z"),
        "Appointment": lambda: appointment(id_, "Patient/ref-patient", status="proposed",
                                           part_status="needs-action"),
        "AppointmentResponse": lambda: appointment_response(id_, "ref-appointment",
                                                            "Patient/ref-patient"),
        "Patient": lambda: patient(id_, "Doe", "Jane"),
        "Practitioner": lambda: practitioner(id_, "Doe", "John"),
        "PractitionerRole": lambda: practitioner_role(id_, practitioner_id="ref-practitioner"),
        "Location": lambda: location(id_, "Room"),
        "Device": lambda: device(id_),
        "HealthcareService": lambda: healthcare_service(id_, "Clinic"),
        "Organization": lambda: organization(id_, "Org"),
        "Communication": lambda: communication(id_),
        "CommunicationRequest": lambda: communication_request(id_),
    }
    return makers[resource_type]()


async def server_written_id(client: httpx.AsyncClient, resource_type: str) -> str:
    """The id of a resource only the server writes: the AuditEvent of a request just made."""
    assert resource_type == "AuditEvent"
    await client.get("Patient?_id=anyone")
    return str((await audit_events(client))[0]["id"])


async def statement(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("metadata")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    return body


def resource_entry(capability: dict[str, Any], resource_type: str) -> dict[str, Any]:
    [entry] = [r for r in capability["rest"][0]["resource"] if r["type"] == resource_type]
    return entry


def advertised_params(capability: dict[str, Any], resource_type: str) -> dict[str, dict]:
    """Every search parameter usable on a type: its own plus the rest-level common ones."""
    rest = capability["rest"][0]
    params = {p["name"]: p for p in rest.get("searchParam", [])}
    params.update({p["name"]: p for p in resource_entry(capability, resource_type)
                   .get("searchParam", [])})
    return params


def sample_value(param: dict[str, Any], resource_type: str) -> str:
    """A syntactically valid value for a parameter of that type."""
    if param["type"] == "reference":
        registry = load_registry(CAPABILITY_DIR)
        definition = registry.get(resource_type, param["name"])
        assert definition is not None
        target = definition.targets[0] if definition.targets else "Patient"
        return f"{target}/1"
    return SAMPLE_VALUES[param["type"]]


async def test_statement_declares_r4_and_every_supported_type(client: httpx.AsyncClient) -> None:
    capability = await statement(client)
    assert capability["fhirVersion"] == "4.0.1"
    assert capability["kind"] == "instance"
    assert "application/fhir+json" in capability["format"]
    rest = capability["rest"][0]
    assert rest["mode"] == "server"
    assert sorted(r["type"] for r in rest["resource"]) == sorted(SUPPORTED_TYPES)
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch", "history-system"}


async def test_custom_slot_end_parameter_is_advertised_and_served(
        client: httpx.AsyncClient) -> None:
    capability = await statement(client)
    end = advertised_params(capability, "Slot")["end"]
    assert end["type"] == "date"
    assert end["definition"] == SLOT_END_URL
    response = await client.get("SearchParameter/Slot-end")
    assert response.status_code == 200
    definition = response.json()
    assert definition["url"] == SLOT_END_URL
    assert (definition["code"], definition["base"], definition["type"]) == ("end", ["Slot"], "date")
    listed = await client.get("SearchParameter")
    assert SLOT_END_URL in {e["resource"]["url"] for e in listed.json()["entry"]}


async def test_custom_appointment_end_finds_long_appointments_overlapping_a_window(
        client: httpx.AsyncClient) -> None:
    end = advertised_params(await statement(client), "Appointment")["end"]
    assert (end["type"], end["definition"]) == ("date", APPOINTMENT_END_URL)
    await put(client,
              appointment("stay", "Patient/p1", start="2030-03-09T08:00:00Z",
                          end="2030-03-12T08:00:00Z"),
              appointment("before", "Patient/p2", start="2030-03-10T08:00:00Z",
                          end="2030-03-10T09:00:00Z"))
    window = "date=lt2030-03-11T12:00:00Z&end=gt2030-03-11T00:00:00Z"
    assert await found(client, f"Appointment?{window}") == {"stay"}
    assert await found(client, "Appointment?end=gt2030-03-10T08:30:00Z") == {"stay", "before"}


@pytest.mark.parametrize("resource_type", SUPPORTED_TYPES)
async def test_every_advertised_interaction_works(client: httpx.AsyncClient,
                                                  resource_type: str) -> None:
    entry = resource_entry(await statement(client), resource_type)
    interactions = {i["code"] for i in entry["interaction"]}
    assert interactions, f"{resource_type} advertises no interaction"
    known = {"create", "read", "vread", "update", "patch", "delete", "history-instance",
             "history-type", "search-type"}
    assert interactions <= known, f"untested interactions: {interactions - known}"

    created_id = "put-created"
    if not interactions & {"create", "update"}:  # written by the server alone: the audit trail
        created_id = await server_written_id(client, resource_type)
    elif "create" in interactions:
        body = minimal(resource_type, "x")
        response = await client.post(resource_type, json={k: v for k, v in body.items()
                                                          if k != "id"})
        assert response.status_code == 201, response.text
        created_id = response.json()["id"]
        assert response.headers["Location"].startswith(
            f"http://testserver/fhir/{resource_type}/{created_id}/_history/1")
    if entry.get("updateCreate"):
        response = await client.put(f"{resource_type}/put-created",
                                    json=minimal(resource_type, "put-created"))
        assert response.status_code == 201, response.text
    if "read" in interactions:
        response = await client.get(f"{resource_type}/{created_id}")
        assert response.status_code == 200
        assert response.json()["id"] == created_id
    if "update" in interactions:
        response = await client.put(f"{resource_type}/{created_id}",
                                    json=minimal(resource_type, created_id)
                                    | {"meta": {"tag": [{"code": "updated"}]}},
                                    headers={"If-Match": 'W/"1"'})
        assert response.status_code == 200, response.text
        assert response.json()["meta"]["versionId"] == "2"
    if "patch" in interactions:
        response = await client.patch(
            f"{resource_type}/{created_id}",
            content=b'[{"op": "add", "path": "/meta/tag/-", "value": {"code": "patched"}}]',
            headers={"Content-Type": "application/json-patch+json"})
        assert response.status_code == 200, response.text
        assert {t["code"] for t in response.json()["meta"]["tag"]} >= {"patched"}
    if "vread" in interactions:
        response = await client.get(f"{resource_type}/{created_id}/_history/1")
        assert response.status_code == 200
        assert response.json()["meta"]["versionId"] == "1"
    if "history-instance" in interactions:
        response = await client.get(f"{resource_type}/{created_id}/_history")
        assert response.status_code == 200
        assert response.json()["type"] == "history"
        assert response.json()["total"] == 1 + len(interactions & {"update", "patch"})
    if "search-type" in interactions:
        assert await found(client, f"{resource_type}?_id={created_id}") == {created_id}
    if "history-type" in interactions:
        response = await client.get(f"{resource_type}/_history")
        assert response.status_code == 200
        assert {e["fullUrl"].rsplit("/", 1)[-1] for e in response.json()["entry"]} \
            >= {created_id}
    if "delete" in interactions:
        response = await client.delete(f"{resource_type}/{created_id}")
        assert response.status_code in (200, 204)
        assert (await client.get(f"{resource_type}/{created_id}")).status_code == 410


async def test_advertised_conditional_create_works(client: httpx.AsyncClient) -> None:
    capability = await statement(client)
    for resource_type in SUPPORTED_TYPES:
        writable = resource_type not in SERVER_WRITTEN_TYPES
        assert resource_entry(capability, resource_type).get("conditionalCreate") is writable
    body = {k: v for k, v in patient("x", "Doe", "Jane").items() if k != "id"}
    body["identifier"] = [{"system": "http://x", "value": "once"}]
    first = await client.post("Patient", json=body,
                              headers={"If-None-Exist": "identifier=http://x|once"})
    again = await client.post("Patient", json=body,
                              headers={"If-None-Exist": "identifier=http://x|once"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert await found(client, "Patient?identifier=once") == {first.json()["id"]}


async def test_advertised_system_interactions_work(client: httpx.AsyncClient) -> None:
    system = {i["code"] for i in (await statement(client))["rest"][0]["interaction"]}
    assert system <= {"batch", "transaction", "history-system"}
    for kind in ("batch", "transaction") if system else ():
        if kind not in system:
            continue
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [{
            "request": {"method": "PUT", "url": f"Patient/{kind}-p"},
            "resource": patient(f"{kind}-p", "Doe", "Jane")}]}
        response = await client.post("http://testserver/fhir", json=bundle)
        assert response.status_code == 200, response.text
        assert response.json()["type"] == f"{kind}-response"
        assert response.json()["entry"][0]["response"]["status"].startswith("201")
    if "history-system" in system:
        response = await client.get("_history")
        assert response.status_code == 200
        assert {e["fullUrl"] for e in response.json()["entry"]} >= {
            "http://testserver/fhir/Patient/batch-p",
            "http://testserver/fhir/Patient/transaction-p"}


@pytest.mark.parametrize("resource_type", SUPPORTED_TYPES)
async def test_every_advertised_search_parameter_is_accepted(client: httpx.AsyncClient,
                                                             resource_type: str) -> None:
    capability = await statement(client)
    params = advertised_params(capability, resource_type)
    assert params, f"{resource_type} advertises no search parameter"
    refused = []
    for name, param in sorted(params.items()):
        assert param["type"] in ("token", "reference", "date", "string", "uri", "number",
                                 "quantity", "composite", "special"), param
        query = f"{resource_type}?{name}={sample_value(param, resource_type)}"
        response = await client.get(query)
        if response.status_code != 200:
            refused.append(f"{query} -> {response.status_code} {response.text[:200]}")
    assert refused == []


@pytest.mark.parametrize("resource_type", SUPPORTED_TYPES)
async def test_every_supported_search_parameter_is_advertised(client: httpx.AsyncClient,
                                                              resource_type: str) -> None:
    registry = load_registry(CAPABILITY_DIR)
    advertised = advertised_params(await statement(client), resource_type)
    supported = {code: definition for code, definition in registry.for_type(resource_type).items()
                 if is_searchable(resource_type, code)}
    assert set(advertised) == set(supported)
    for code, definition in supported.items():
        assert advertised[code]["type"] == definition.type, code
        assert advertised[code].get("definition") == definition.url, code
    for code, definition in registry.for_type(resource_type).items():  # e.g. the audit log's
        if code not in supported:
            value = sample_value({"name": code, "type": definition.type}, resource_type)
            assert (await client.get(f"{resource_type}?{code}={value}")).status_code == 400, code


async def test_advertised_common_parameters_find_resources_by_their_meta(
        client: httpx.AsyncClient) -> None:
    meta = {"tag": [{"system": "http://x/tags", "code": "vip"}],
            "security": [{"system": "http://x/security", "code": "restricted"}],
            "profile": ["http://x/StructureDefinition/clinic-patient"],
            "source": "http://x/intake"}
    await put(client, patient("tagged", "Doe", "Jane", meta=meta), patient("plain", "Doe", "Jo"))
    assert await found(client, "Patient?_tag=http://x/tags|vip") == {"tagged"}
    assert await found(client, "Patient?_tag:not=vip") == {"plain"}
    assert await found(client, "Patient?_security=restricted") == {"tagged"}
    assert await found(client, "Patient?_profile=http://x/StructureDefinition/clinic-patient") \
        == {"tagged"}
    assert await found(client, "Patient?_source=http://x/intake") == {"tagged"}


@pytest.mark.parametrize(("resource_type", "query"), [
    ("Appointment", "not-a-param=1"),
    ("Slot", "finish=2026-01-01"),
    ("Schedule", "planning-horizon=2026-01-01"),
    ("Patient", "phonetic=smith"),  # not implemented, so not advertised
    ("Location", "near=42.36|-71.06|10|km"),  # not implemented, so not advertised
    ("Appointment", "_text=x"),
    ("Appointment", "_content=x"),
])
async def test_parameters_not_advertised_are_refused(client: httpx.AsyncClient,
                                                     resource_type: str, query: str) -> None:
    name = query.split("=", 1)[0]
    assert name not in advertised_params(await statement(client), resource_type)
    response = await client.get(f"{resource_type}?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("resource_type", SUPPORTED_TYPES)
async def test_every_advertised_include_and_revinclude_is_accepted(
        client: httpx.AsyncClient, resource_type: str) -> None:
    entry = resource_entry(await statement(client), resource_type)
    refused = []
    for control, values in (("_include", entry.get("searchInclude", [])),
                            ("_revinclude", entry.get("searchRevInclude", []))):
        for value in values:
            response = await client.get(f"{resource_type}?{control}={value}")
            if response.status_code != 200:
                refused.append(f"{control}={value} -> {response.status_code}")
    assert refused == []


async def test_scheduling_includes_are_advertised(client: httpx.AsyncClient) -> None:
    capability = await statement(client)
    assert "Slot:schedule" in resource_entry(capability, "Slot")["searchInclude"]
    assert "Schedule:actor" in resource_entry(capability, "Schedule")["searchInclude"]
    assert {"Appointment:patient", "Appointment:practitioner", "Appointment:location",
            "Appointment:slot", "Appointment:actor"} <= set(
        resource_entry(capability, "Appointment")["searchInclude"])
    assert "Slot:schedule" in resource_entry(capability, "Schedule")["searchRevInclude"]
    assert "AppointmentResponse:appointment" in resource_entry(
        capability, "Appointment")["searchRevInclude"]


async def test_an_advertised_revinclude_returns_the_referring_resources(
        client: httpx.AsyncClient) -> None:
    await put(client, patient("p", "Doe", "Jane"),
              appointment("a", "Patient/p", status="proposed", part_status="needs-action"),
              appointment_response("r", "a", "Patient/p"))
    bundle = await client.get("Appointment?_revinclude=AppointmentResponse:appointment")
    modes = {(e["resource"]["id"], e["search"]["mode"]) for e in bundle.json()["entry"]}
    assert modes == {("a", "match"), ("r", "include")}
