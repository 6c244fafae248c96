"""An `AuditRecord` as an audit log row, and the row back as its BALP AuditEvent.

The row keeps the record's fields (not the rendered AuditEvent: a few hundred bytes instead of
two kilobytes) plus the patients found in the response body, which is not kept. Its search
fields follow the R4 AuditEvent parameters: `entity` is every `entity.what` (the resource and
the patients), `patient` the patient entities and a patient user, `agent` the user
(`fhirUser`), `agent-name` the client id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import fields
from typing import Any, Final

import orjson

from fhir_server.audit.events import (
    SUBTYPE_ACTION,
    AuditRecord,
    build_audit_event,
    outcome_code,
    patient_of_reference,
    patient_references,
    patients_of,
)
from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.search.extract import normalize_string
from fhir_server.store.protocol import AuditEntry, LoggedAudit
from fhir_server.store.timestamps import from_micros, to_micros

MAX_BODY_SCAN: Final = 256 * 1024  # larger bodies are not searched for patient references
_REFERENCE: Final = re.compile(rb'"reference"\s*:\s*"([^"\\]*)"')
_KEPT: Final = tuple(f.name for f in fields(AuditRecord) if f.name not in ("recorded", "body"))


def log_entry(record: AuditRecord, id: str) -> AuditEntry:
    """The row for `record` under the server-assigned `id`."""
    patients = patients_of(record, _served_patients(record.body))
    recorded_us = to_micros(record.recorded)
    kept: dict[str, Any] = {name: getattr(record, name) for name in _KEPT}
    kept = {name: value for name, value in kept.items() if value is not None}
    kept["recorded_us"] = recorded_us
    kept["patients"] = patients
    subtype, action = SUBTYPE_ACTION.get(record.interaction, (record.interaction, "E"))
    return AuditEntry(
        id=id, recorded_us=recorded_us, subtype=subtype, action=action,
        outcome=outcome_code(record.status), client_id=record.client_id,
        client_key=normalize_string(record.client_id) if record.client_id else None,
        references=_references(record, patients), record=orjson.dumps(kept))


def audit_event(logged: LoggedAudit, *, server: str) -> dict[str, Any]:
    """The AuditEvent of a logged row, with its id and `meta.lastUpdated` (the recorded time)."""
    kept = orjson.loads(logged.record)
    record = AuditRecord(recorded=from_micros(kept["recorded_us"]),
                         **{name: kept[name] for name in _KEPT if name in kept})
    event = build_audit_event(record, server=server, patients=kept.get("patients", ()))
    return {"resourceType": "AuditEvent", "id": logged.id,
            "meta": {"lastUpdated": format_instant(record.recorded)},
            **{key: value for key, value in event.items() if key != "resourceType"}}


def _references(record: AuditRecord, patients: list[str]) -> tuple[tuple[str, str, str], ...]:
    """`(param, type, id)` for the entity, patient and agent searches, once each."""
    found: dict[tuple[str, str, str], None] = {}
    if record.resource_type and record.resource_id:
        found["entity", record.resource_type, record.resource_id] = None
    for patient in patients:
        found["entity", "Patient", patient.removeprefix("Patient/")] = None
        found["patient", "Patient", patient.removeprefix("Patient/")] = None
    if record.fhir_user and "/" in record.fhir_user:
        user_type, _, user_id = record.fhir_user.rpartition("/")
        user_type = user_type.rsplit("/", 1)[-1]
        found["agent", user_type, user_id] = None
        if user_type == "Patient":
            found["patient", "Patient", user_id] = None
    return tuple(found)


def _served_patients(body: bytes | None) -> Iterator[str]:
    """The patients a served or written body refers to (its contained resources excluded).

    A regular expression finds the references without parsing; only a body with contained
    resources is parsed, to leave theirs out.
    """
    if not body or len(body) > MAX_BODY_SCAN or b"Patient/" not in body:
        return iter(())
    if b'"contained"' not in body:
        found = (patient_of_reference(m.decode("utf-8", "replace"))
                 for m in _REFERENCE.findall(body))
        return (patient for patient in found if patient is not None)
    try:
        return patient_references(orjson.loads(body))
    except orjson.JSONDecodeError:
        return iter(())
