"""AuditEvents shaped per IHE Basic Audit Log Patterns (BALP), built from what a request did.

Pure: the API fills in an `AuditRecord` (what was asked, by whom, and how it ended), the
writer logs it with the patients it concerned (`log_entries.py`), and the AuditEvent is built
from the logged record when someone reads it. One event per interaction:
`type` rest, `subtype` the FHIR restful interaction, `action` C/R/U/D/E, `outcome` 0/4/8,
agents for the client application, the user (`fhirUser`, the requestor) and this server,
`source` this server, and entities for the resource, the search query (base64) and the
patient the access concerned.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qsl

from fhir_server.fhir.instants import format_instant
from fhir_server.store.timestamps import from_micros

AUDIT_EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
DICOM: Final = "http://dicom.nema.org/resources/ontology/DCM"
SECURITY_ROLE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
NETWORK_IP: Final = "2"

# Our route interactions → (BALP subtype code, action). A search is an execute (BALP Query).
SUBTYPE_ACTION: Final = {
    "read": ("read", "R"), "vread": ("vread", "R"),
    "history-instance": ("history-instance", "R"), "history-type": ("history-type", "R"),
    "history-system": ("history-system", "R"),
    "search-type": ("search-type", "E"), "search-system": ("search-system", "E"),
    "create": ("create", "C"), "update": ("update", "U"), "patch": ("patch", "U"),
    "delete": ("delete", "D"),
    "batch": ("batch", "E"), "transaction": ("transaction", "E"),
    "operation": ("operation", "E"),
}
SEARCHES: Final = frozenset({"search-type", "search-system"})


class AuditRecord(NamedTuple):
    """What one FHIR request did, captured cheaply in the request path (a tuple: built in
    well under a microsecond)."""

    interaction: str  # a key of SUBTYPE_ACTION
    status: int
    recorded_us: int  # epoch microseconds (`time.time_ns() // 1000`: no datetime per request)
    resource_type: str | None = None
    resource_id: str | None = None
    version_id: str | None = None
    operation: str | None = None
    query: str | None = None  # the raw query string of a search
    outcome_desc: str | None = None  # None: the status line (`200 OK`)
    client_id: str | None = None
    fhir_user: str | None = None
    patient_id: str | None = None  # the token's patient context or compartment
    address: str | None = None
    body: bytes | None = None  # a single resource served or written, to find its patients
    # The patients that resource refers to, when its stored version kept them (the body is
    # then not scanned); None when unknown.
    served_patients: tuple[str, ...] | None = None


def status_line(status: int) -> str:
    """`404 Not Found`."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def outcome_code(status: int) -> str:
    """0 success, 4 minor failure (refused or bad request), 8 serious failure (server)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def build_audit_event(record: AuditRecord, *, server: str,
                      patients: Sequence[str] = ()) -> dict[str, Any]:
    """The AuditEvent for `record`; `server` is the FHIR base URL (observer and agent),
    `patients` the `Patient/<id>` references the access concerned (see `patients_of`)."""
    subtype, action = SUBTYPE_ACTION.get(record.interaction, (record.interaction, "E"))
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": RESTFUL_INTERACTION, "code": subtype}],
        "action": action,
        "recorded": format_instant(from_micros(record.recorded_us)),
        "outcome": outcome_code(record.status),
        "outcomeDesc": record.outcome_desc or status_line(record.status),
        "agent": _agents(record, server),
        "source": {"observer": {"display": "fhir-scheduler", "identifier": {
                       "system": "urn:ietf:rfc:3986", "value": server}},
                   "type": [{"system": SOURCE_TYPE, "code": "4",
                             "display": "Application Server"}]},
    }
    entities = list(_entities(record, patients))
    if entities:
        event["entity"] = entities
    return event


def _agents(record: AuditRecord, server: str) -> list[dict[str, Any]]:
    client: dict[str, Any] = {
        "type": _concept(DICOM, "110153", "Source Role ID"),
        "requestor": record.fhir_user is None,
    }
    if record.client_id:
        client["who"] = {"identifier": {"value": record.client_id}}
        client["name"] = record.client_id
    if record.address:
        client["network"] = {"address": record.address, "type": NETWORK_IP}
    agents = [client,
              {"type": _concept(DICOM, "110152", "Destination Role ID"),
               "who": {"display": "fhir-scheduler",
                       "identifier": {"system": "urn:ietf:rfc:3986", "value": server}},
               "requestor": False}]
    if record.fhir_user:
        agents.append({"type": _concept(SECURITY_ROLE_TYPE, "humanuser", "human user"),
                       "who": {"reference": record.fhir_user}, "requestor": True})
    return agents


def _entities(record: AuditRecord, patients: Sequence[str]) -> Iterator[dict[str, Any]]:
    if record.interaction in SEARCHES:
        query = (record.query or "").encode()
        yield {"type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
               "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
               "description": f"{record.resource_type or ''}?{record.query or ''}",
               "query": base64.b64encode(query).decode("ascii")}
    reference = resource_reference(record)
    if reference is not None:
        yield {"what": {"reference": reference},
               "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
               "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}}
    for patient in patients:
        yield {"what": {"reference": patient},
               "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
               "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}}


def resource_reference(record: AuditRecord) -> str | None:
    """`Type/id[/_history/v]` of the resource acted on, when the request names one."""
    if not record.resource_type or not record.resource_id:
        return None
    reference = f"{record.resource_type}/{record.resource_id}"
    return f"{reference}/_history/{record.version_id}" if record.version_id else reference


def patients_of(record: AuditRecord, served: Sequence[str] = ()) -> Sequence[str]:
    """The patients the access concerned: the token's patient, the Patient read, the
    patients the resource `served` refers to and those a search names (first-seen order)."""
    if not record.patient_id and record.resource_type != "Patient" and not (
            record.interaction in SEARCHES and record.query):
        # Only what was served: most often one patient or none, as it came.
        return served if len(served) < 2 else list(dict.fromkeys(served))
    found = ["Patient/" + record.patient_id] if record.patient_id else []
    if record.resource_type == "Patient" and record.resource_id:
        served = ("Patient/" + record.resource_id, *served)
    if record.interaction in SEARCHES and record.query:
        served = (*served, *_searched_patients(record.query))
    for patient in served:  # a handful at most: a list beats a dict here
        if patient not in found:
            found.append(patient)
    return found


def _searched_patients(query: str) -> Iterator[str]:
    """Patients a search names: `patient=<id>` or any `Patient/<id>` value."""
    for name, value in parse_qsl(query, keep_blank_values=False):
        for each in value.split(","):
            if each.startswith("Patient/") and "/" not in each[len("Patient/"):]:
                yield each
            elif name.split(":")[0] == "patient" and each and "/" not in each:
                yield f"Patient/{each}"


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}
