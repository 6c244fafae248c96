"""An `AuditRecord` as an audit log row, and the row back as its BALP AuditEvent.

The row keeps the record, not the rendered AuditEvent (a few hundred bytes instead of two
kilobytes, and microseconds to build on the event loop): a JSON array `[1, recorded_us,
<the AuditRecord fields from interaction to address>, patients]`, 1 being the format. The
response body is not kept; the patients it refers to are. The search fields follow the R4
AuditEvent parameters: `entity` is every `entity.what` (the resource, and the patients:
`audit_search` looks for an entity among the patients too), `patient` the patient entities
and a patient user, `agent` the user (`fhirUser`), `agent-name` the client id.
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
from fhir_server.fhir.search.extract import normalize_string
from fhir_server.store.protocol import AuditEntry, LoggedAudit

FORMAT: Final = 1
MAX_BODY_SCAN: Final = 256 * 1024  # larger bodies are not searched for patient references
# The id of every Patient reference (relative, absolute or versioned) in a JSON body.
_PATIENT_REFERENCE: Final = re.compile(
    rb'"reference"\s*:\s*"(?:[^"\\]*/)?Patient/([^"\\/]+)(?:/_history/[^"\\]*)?"')
_KEPT: Final = slice(3, len(AuditRecord._fields) - 1)  # resource_type..address (not body)


def log_entry(record: AuditRecord, id: str) -> AuditEntry:
    """The row for `record` under the server-assigned `id` (one per request: kept lean)."""
    body = record.body
    patients = patients_of(record, _served_patients(body) if body else ())
    interaction, status, recorded_us = record[:3]
    client = record.client_id
    subtype, action = SUBTYPE_ACTION.get(interaction) or (interaction, "E")
    return AuditEntry(
        id, recorded_us, subtype, action, "0" if status < 400 else outcome_code(status), client,
        _client_key(client) if client else None, _references(record, patients),
        orjson.dumps((FORMAT, recorded_us, interaction, status, *record[_KEPT], patients)))


def audit_event(logged: LoggedAudit, *, server: str) -> dict[str, Any]:
    """The AuditEvent of a logged row, with its id and `meta.lastUpdated` (the recorded time)."""
    _, recorded_us, interaction, status, *fields, patients = orjson.loads(logged.record)
    record = AuditRecord(interaction, status, recorded_us, *fields)
    event = build_audit_event(record, server=server, patients=patients)
    return {"resourceType": "AuditEvent", "id": logged.id,
            "meta": {"lastUpdated": event["recorded"]},
            **{key: value for key, value in event.items() if key != "resourceType"}}


@functools.lru_cache(maxsize=1024)
def _client_key(client_id: str) -> str:
    return normalize_string(client_id)


def _references(record: AuditRecord, patients: list[str]) -> tuple[tuple[str, str, str], ...]:
    """`(param, type, id)` for the entity, patient and agent searches, once each. The patients
    are entities too, but are kept once, as `patient`: an `entity` search looks there too."""
    found = [("patient", "Patient", patient[8:]) for patient in patients]  # after "Patient/"
    if record.resource_type and record.resource_id:
        found.insert(0, ("entity", record.resource_type, record.resource_id))
    user = record.fhir_user
    if user and "/" in user:
        agent, patient = _user_references(user)
        found.append(agent)
        if patient is not None and patient not in found:
            found.append(patient)  # a patient user is a patient too
    return tuple(found)


@functools.lru_cache(maxsize=1024)
def _user_references(user: str) -> tuple[tuple[str, str, str], tuple[str, str, str] | None]:
    """The `agent` reference of a `fhirUser` and, for a patient user, its `patient` one (a
    caller's user repeats in every record of theirs)."""
    user_type, _, user_id = user.rpartition("/")
    user_type = user_type.rpartition("/")[2]
    patient = ("patient", "Patient", user_id) if user_type == "Patient" else None
    return ("agent", user_type, user_id), patient


def _served_patients(body: bytes) -> list[str]:
    """The patients a served or written body refers to (its contained resources excluded):
    found by a regular expression; only a body with contained resources is parsed."""
    if len(body) > MAX_BODY_SCAN or b"Patient/" not in body:
        return []
    if b'"contained"' not in body:
        return ["Patient/" + found.decode("utf-8", "replace")
                for found in _PATIENT_REFERENCE.findall(body)]
    try:
        return list(patient_references(orjson.loads(body)))
    except orjson.JSONDecodeError:
        return []
