"""An `AuditRecord` as an audit log row, and the row back as its BALP AuditEvent.

The row keeps the record, not the rendered AuditEvent (a few hundred bytes instead of two
kilobytes, and microseconds to build on the event loop): a JSON array `[1, recorded_us,
<the AuditRecord fields from interaction to address>, patients]`, 1 being the format. The
response body is not kept; the patients it refers to are. The search fields follow the R4
AuditEvent parameters: `entity` is every `entity.what` (the resource and the patients),
`patient` the patient entities and a patient user, `agent` the user (`fhirUser`),
`agent-name` the client id.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

import orjson

from fhir_server.audit.events import (
    SUBTYPE_ACTION,
    AuditRecord,
    build_audit_event,
    outcome_code,
    patient_references,
    patients_of,
)
from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.search.extract import normalize_string
from fhir_server.store.protocol import AuditEntry, LoggedAudit
from fhir_server.store.timestamps import from_micros, to_micros

FORMAT: Final = 1
MAX_BODY_SCAN: Final = 256 * 1024  # larger bodies are not searched for patient references
# The id of every Patient reference (relative, absolute or versioned) in a JSON body.
_PATIENT_REFERENCE: Final = re.compile(
    rb'"reference"\s*:\s*"(?:[^"\\]*/)?Patient/([^"\\/]+)(?:/_history/[^"\\]*)?"')
_KEPT: Final = slice(3, len(AuditRecord._fields) - 1)  # resource_type..address (not body)
_AGENT_PARAMS: Final = {"Patient": (("agent", "Patient"), ("patient", "Patient"))}


def log_entry(record: AuditRecord, id: str) -> AuditEntry:
    """The row for `record` under the server-assigned `id`."""
    patients = patients_of(record, _served_patients(record.body))
    recorded_us = to_micros(record.recorded)
    interaction, status = record.interaction, record.status
    kept = (FORMAT, recorded_us, interaction, status, *record[_KEPT], patients)
    subtype, action = SUBTYPE_ACTION.get(interaction, (interaction, "E"))
    client = record.client_id
    return AuditEntry(id, recorded_us, subtype, action, outcome_code(status), client,
                      _client_key(client) if client else None,
                      _references(record, patients), orjson.dumps(kept))


def audit_event(logged: LoggedAudit, *, server: str) -> dict[str, Any]:
    """The AuditEvent of a logged row, with its id and `meta.lastUpdated` (the recorded time)."""
    _, recorded_us, interaction, status, *fields, patients = orjson.loads(logged.record)
    record = AuditRecord(interaction, status, from_micros(recorded_us), *fields)
    event = build_audit_event(record, server=server, patients=patients)
    return {"resourceType": "AuditEvent", "id": logged.id,
            "meta": {"lastUpdated": format_instant(record.recorded)},
            **{key: value for key, value in event.items() if key != "resourceType"}}


@functools.lru_cache(maxsize=1024)
def _client_key(client_id: str) -> str:
    return normalize_string(client_id)


def _references(record: AuditRecord, patients: list[str]) -> tuple[tuple[str, str, str], ...]:
    """`(param, type, id)` for the entity, patient and agent searches, once each."""
    found: list[tuple[str, str, str]] = []
    if record.resource_type and record.resource_id:
        found.append(("entity", record.resource_type, record.resource_id))
    for patient in patients:
        patient_id = patient[8:]  # after "Patient/"
        if record.resource_type != "Patient" or record.resource_id != patient_id:
            found.append(("entity", "Patient", patient_id))
        found.append(("patient", "Patient", patient_id))
    user = record.fhir_user
    if user and "/" in user:
        user_type, _, user_id = user.rpartition("/")
        user_type = user_type.rpartition("/")[2]
        for param, kind in _AGENT_PARAMS.get(user_type, (("agent", user_type),)):
            if (param, kind, user_id) not in found:
                found.append((param, kind, user_id))
    return tuple(found)


def _served_patients(body: bytes | None) -> list[str]:
    """The patients a served or written body refers to (its contained resources excluded):
    found by a regular expression; only a body with contained resources is parsed."""
    if not body or len(body) > MAX_BODY_SCAN or b"Patient/" not in body:
        return []
    if b'"contained"' not in body:
        return [f"Patient/{found.decode('utf-8', 'replace')}"
                for found in _PATIENT_REFERENCE.findall(body)]
    try:
        return list(patient_references(orjson.loads(body)))
    except orjson.JSONDecodeError:
        return []
