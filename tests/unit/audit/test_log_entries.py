"""A logged record renders the same BALP AuditEvent as the record itself, and its search
fields follow the R4 AuditEvent parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from fhir_server.audit.events import AuditRecord, build_audit_event, patients_of
from fhir_server.audit.log_entries import audit_event, log_entry
from fhir_server.fhir.validation import validate_resource
from fhir_server.store.protocol import LoggedAudit
from fhir_server.store.timestamps import to_micros

SERVER = "http://clinic.example/fhir"
WHEN = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
APPOINTMENT = orjson.dumps({
    "resourceType": "Appointment", "id": "a1",
    "participant": [{"actor": {"reference": "http://clinic.example/fhir/Patient/p2/_history/4"}},
                    {"actor": {"reference": "Practitioner/d1"}}],
    "contained": [{"resourceType": "Patient", "link": [{"other": {"reference": "Patient/no"}}]}]})


def a_read(status: int = 200, **fields: object) -> AuditRecord:
    values: dict[str, object] = {"resource_type": "Appointment", "resource_id": "a1",
                                 "version_id": "2", "client_id": "Front-Desk",
                                 "fhir_user": "Practitioner/d1", "address": "10.0.0.7"}
    values.update(fields)
    return AuditRecord("read", status, to_micros(WHEN), **values)  # type: ignore[arg-type]


def test_the_rendered_event_is_the_records_event_with_id_and_meta() -> None:
    record = a_read(body=APPOINTMENT, patient_id="p1")
    entry = log_entry(record, "e1")
    event = audit_event(LoggedAudit(entry.id, entry.record), server=SERVER)

    expected = build_audit_event(record, server=SERVER,
                                 patients=patients_of(record, ["Patient/p2"]))
    assert event == {"resourceType": "AuditEvent", "id": "e1",
                     "meta": {"lastUpdated": "2026-03-02T09:30:15.123Z"},
                     **{k: v for k, v in expected.items() if k != "resourceType"}}
    validate_resource(event, resource_type="AuditEvent")
    assert "participant" not in entry.record  # the body is scanned, not kept


def test_search_fields_are_subtype_action_outcome_entities_patients_and_agents() -> None:
    entry = log_entry(a_read(status=403, body=APPOINTMENT), "e1")

    assert (entry.subtype, entry.action, entry.outcome) == ("read", "R", "4")
    assert (entry.client_id, entry.client_key) == ("Front-Desk", "front-desk")
    assert entry.recorded_us == int(WHEN.timestamp() * 1_000_000)
    # The patient is an entity too; it is logged once, as `patient` (entity searches look there).
    assert entry.references == (("entity", "Appointment", "a1"), ("patient", "Patient", "p2"),
                                ("agent", "Practitioner", "d1"))


def test_a_patient_user_is_an_agent_and_a_patient() -> None:
    entry = log_entry(a_read(fhir_user="Patient/p9", resource_type="Slot", resource_id="s1"),
                      "e1")

    assert ("agent", "Patient", "p9") in entry.references
    assert ("patient", "Patient", "p9") in entry.references
    assert ("entity", "Patient", "p9") not in entry.references  # not what was accessed


def test_the_patients_of_a_body_are_its_patient_references_and_nothing_else() -> None:
    body = orjson.dumps({
        "resourceType": "Appointment", "id": "a1",
        "description": "moved for Patient/not-a-reference",
        "participant": [
            {"actor": {"reference": "Patient/p1", "display": "Patient/p9"}},
            {"actor": {"reference": "https://other.example/fhir/Patient/p2/_history/3"}},
            {"actor": {"reference": "Patient/p3/_history/1"}},
            {"actor": {"reference": "Patient/p1"}},
            {"actor": {"reference": "Patient/p4/extra"}},
            {"actor": {"reference": "Practitioner/d1"}}],
        "basedOn": [{"reference": "ServiceRequest/Patient"}]})
    spaced = body.replace(b'":"', b'": "')  # a client's pretty-printed JSON, written back

    for served in (body, spaced):
        entry = log_entry(a_read(body=served), "e1")
        assert orjson.loads(entry.record)[2] == ["Patient/p1", "Patient/p2", "Patient/p3"]
        assert entry.patient_id == "p1"
        assert entry.more_references == (("patient", "Patient", "p2"),
                                         ("patient", "Patient", "p3"))


def test_patients_kept_with_the_stored_version_are_used_instead_of_scanning_the_body() -> None:
    entry = log_entry(a_read(body=None, served_patients=("Patient/p7", "Patient/p8")), "e1")
    empty = log_entry(a_read(body=None, served_patients=()), "e2")

    assert (entry.patient_id, entry.more_references) == ("p7", (("patient", "Patient", "p8"),))
    assert orjson.loads(entry.record)[2] == ["Patient/p7", "Patient/p8"]
    assert (empty.patient_id, orjson.loads(empty.record)[2]) == (None, [])


def test_records_of_the_first_format_still_render() -> None:
    stored = orjson.dumps([1, to_micros(WHEN), "read", 200, "Appointment", "a1", "2", None,
                           None, None, "Front-Desk", "Practitioner/d1", None, "10.0.0.7",
                           ["Patient/p2"]])
    event = audit_event(LoggedAudit("old", stored), server=SERVER)

    record = a_read()
    assert event["entity"] == build_audit_event(record, server=SERVER,
                                                patients=["Patient/p2"])["entity"]
    assert event["meta"]["lastUpdated"] == "2026-03-02T09:30:15.123Z"
