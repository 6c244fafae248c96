"""AuditEvents built per IHE BALP from what a request did: valid R4, right codes and entities."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from fhir_server.audit.events import (
    AuditRecord,
    build_audit_event,
    patients_of,
)
from fhir_server.fhir.references import patient_references
from fhir_server.fhir.validation import validate_resource
from fhir_server.store.timestamps import to_micros

SERVER = "http://clinic.example/fhir"
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def record(interaction: str = "read", status: int = 200, **fields: object) -> AuditRecord:
    values: dict[str, object] = {"resource_type": "Appointment", "resource_id": "a1",
                                 "client_id": "app", "address": "10.0.0.7"}
    values.update(fields)
    return AuditRecord(interaction, status, to_micros(WHEN), **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("interaction", "action"), [
    ("read", "R"), ("vread", "R"), ("history-instance", "R"), ("search-type", "E"),
    ("create", "C"), ("update", "U"), ("patch", "U"), ("delete", "D"), ("operation", "E"),
    ("transaction", "E")])
def test_subtype_is_the_interaction_and_action_follows_it(interaction: str, action: str) -> None:
    event = build_audit_event(record(interaction), server=SERVER)

    validate_resource(event, resource_type="AuditEvent")
    assert event["subtype"] == [{"system": "http://hl7.org/fhir/restful-interaction",
                                 "code": interaction}]
    assert event["type"]["code"] == "rest"
    assert event["action"] == action
    assert event["recorded"] == "2026-03-02T09:30:00.000Z"


@pytest.mark.parametrize(("status", "outcome"), [(200, "0"), (201, "0"), (401, "4"),
                                                 (403, "4"), (404, "4"), (500, "8"), (503, "8")])
def test_outcome_is_success_minor_or_serious_failure(status: int, outcome: str) -> None:
    assert build_audit_event(record(status=status), server=SERVER)["outcome"] == outcome


def test_the_user_is_the_requestor_and_the_client_and_server_are_agents() -> None:
    event = build_audit_event(record(fhir_user="Practitioner/dr-a"), server=SERVER)

    client, server, user = event["agent"]
    assert client["who"] == {"identifier": {"value": "app"}}
    assert client["network"] == {"address": "10.0.0.7", "type": "2"}
    assert (client["requestor"], server["requestor"], user["requestor"]) == (False, False, True)
    assert server["who"]["identifier"]["value"] == SERVER
    assert user["who"] == {"reference": "Practitioner/dr-a"}
    assert event["source"]["observer"]["identifier"]["value"] == SERVER


def test_a_search_carries_its_query_base64_and_the_patient_it_names() -> None:
    query = "patient=Patient/p1&date=ge2026-01-01"
    searched = record("search-type", resource_id=None, query=query)
    event = build_audit_event(searched, server=SERVER, patients=patients_of(searched))

    validate_resource(event, resource_type="AuditEvent")
    query_entity, patient = event["entity"]
    assert base64.b64decode(query_entity["query"]).decode() == query
    assert query_entity["role"]["code"] == "24"
    assert patient["what"] == {"reference": "Patient/p1"}
    assert patient["role"]["code"] == "1"


def test_the_resource_is_versioned_and_its_patients_become_entities() -> None:
    appointment = {"resourceType": "Appointment", "participant": [
        {"actor": {"reference": "Patient/p2"}}, {"actor": {"reference": "Practitioner/d"}}]}
    vread = record("vread", version_id="3", patient_id="p1")
    event = build_audit_event(vread, server=SERVER,
                              patients=patients_of(vread, list(patient_references(appointment))))

    assert [e["what"]["reference"] for e in event["entity"]] == [
        "Appointment/a1/_history/3", "Patient/p1", "Patient/p2"]
