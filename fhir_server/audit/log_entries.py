"""An `AuditRecord` as an audit log row, and the row back as its BALP AuditEvent.

The row keeps the record, not the rendered AuditEvent (a few hundred bytes instead of two
kilobytes, and microseconds to build on the event loop): a JSON array `[2, [<the
AuditRecord fields from interaction to address>], patients]`, 2 being the format (format 1,
`[1, recorded_us, interaction, status, <resource_type to address>, patients]`, is still
read). The response body is not kept; the patients it refers to are. The search fields follow the R4
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
    patients_of,
)
from fhir_server.fhir.references import patient_references
from fhir_server.fhir.search.extract import normalize_string
from fhir_server.store.protocol import AuditEntry, LoggedAudit

FORMAT: Final = 2
_FIELDS: Final = len(AuditRecord._fields) - 2  # interaction..address (not what was served)
_ENTRY: Final = tuple.__new__  # builds an AuditEntry from its 14 fields in one C call
MAX_BODY_SCAN: Final = 256 * 1024  # larger bodies are not searched for patient references
# The id of every Patient reference (relative, absolute or versioned) in a JSON body.
_PATIENT_REFERENCE: Final = re.compile(
    rb'"reference"\s*:\s*"(?:[^"\\]*/)?Patient/([^"\\/]+)(?:/_history/[^"\\]*)?"')
_PATIENT: Final = b"Patient/"
_RELATIVE_KEY: Final = b'"reference":"'  # how the server writes JSON: no spaces
_BACKSLASH: Final = ord("\\")


def log_entry(record: AuditRecord, id: str) -> AuditEntry:
    """The row for `record` under the server-assigned `id` (one per request: kept lean)."""
    (interaction, status, recorded_us, resource_type, resource_id, _, _, _, _, client, user,
     _, _, body, served) = record
    if served is None:  # the stored version did not say: its body is searched
        served = _served_patients(body) if body else ()
    patients = patients_of(record, served)
    patient = patients[0][8:] if patients else None  # the id, after "Patient/"
    more = tuple(("patient", "Patient", p[8:]) for p in patients[1:]) if len(patients) > 1 else ()
    agent_type = agent_id = None
    if user and "/" in user:
        agent_type, agent_id = _agent(user)
        if agent_type == "Patient" and f"Patient/{agent_id}" not in patients:
            if patient is None:  # a patient user is a patient too
                patient = agent_id
            else:
                more += (("patient", "Patient", agent_id),)
    subtype, action = SUBTYPE_ACTION.get(interaction) or (interaction, "E")
    has_entity = bool(resource_type and resource_id)
    return _ENTRY(AuditEntry, (
        id, recorded_us, subtype, action, "0" if status < 400 else outcome_code(status), client,
        _client_key(client) if client else None,
        orjson.dumps((FORMAT, record[:_FIELDS], patients)).decode(),  # text binds cheaper
        resource_type if has_entity else None, resource_id if has_entity else None, patient,
        agent_type, agent_id, more))


def audit_event(logged: LoggedAudit, *, server: str) -> dict[str, Any]:
    """The AuditEvent of a logged row, with its id and `meta.lastUpdated` (the recorded time)."""
    stored = orjson.loads(logged.record)
    if stored[0] == 1:  # [1, recorded_us, interaction, status, ..., patients]
        _, recorded_us, interaction, status, *fields, patients = stored
        record = AuditRecord(interaction, status, recorded_us, *fields)
    else:
        _, fields, patients = stored
        record = AuditRecord(*fields)
    event = build_audit_event(record, server=server, patients=patients)
    return {"resourceType": "AuditEvent", "id": logged.id,
            "meta": {"lastUpdated": event["recorded"]},
            **{key: value for key, value in event.items() if key != "resourceType"}}


@functools.lru_cache(maxsize=1024)
def _client_key(client_id: str) -> str:
    return normalize_string(client_id)


@functools.lru_cache(maxsize=1024)
def _agent(user: str) -> tuple[str, str]:
    """(type, id) of a `fhirUser` reference (a caller's user repeats in every record)."""
    user_type, _, user_id = user.rpartition("/")
    return user_type.rpartition("/")[2], user_id


def _served_patients(body: bytes) -> list[str]:
    """The patients a served or written body refers to (its contained resources excluded).

    Each `Patient/` found must be a `"reference"` value: read straight from the bytes when
    the value is a plain relative reference written as the server writes JSON, otherwise
    checked with the pattern from the key before it. Only a body with contained resources is
    parsed. (`find`, not `in`: it is the cheaper call; and `"contained`, not `"contained"`: a
    needle ending in `"`, JSON's commonest byte, is a slow search.)
    """
    at = body.find(_PATIENT)
    if at < 0 or len(body) > MAX_BODY_SCAN:
        return []
    if body.find(b'"contained') >= 0:
        try:
            return list(patient_references(orjson.loads(body)))
        except orjson.JSONDecodeError:
            return []
    found = []
    while at >= 0:
        end = body.find(b'"', at)  # of the string `Patient/` is in
        if end < 0:
            break
        start = at + len(_PATIENT)
        if (body.startswith(_RELATIVE_KEY, at - len(_RELATIVE_KEY)) and end > start
                and body.find(b"/", start, end) < 0 and body[end - 1] != _BACKSLASH):
            found.append(body[at:end].decode())  # "reference":"Patient/<id>"
        else:
            key = body.rfind(b'"reference"', 0, at)
            match = _PATIENT_REFERENCE.match(body, key) if key >= 0 else None
            if match is not None and match.end() > at:  # this `Patient/` is in that value
                found.append("Patient/" + match[1].decode())
                end = match.end()
        at = body.find(_PATIENT, end)
    return found
