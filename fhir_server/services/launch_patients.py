"""The patients a user may choose as the context of a standalone SMART launch.

Staff and administrators may choose any patient; a doctor only patients with an appointment
with them (the role "reads the patients they see"), so the picker never shows a doctor a
patient the resource server would then refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from fhir_server.services.context import FhirContext
from fhir_server.services.search import search
from fhir_server.store.protocol import StoredResource

PICKER_LIMIT = 50


@dataclass(frozen=True, slots=True)
class PatientChoice:
    """One line of the patient picker."""

    id: str
    name: str
    birth_date: str


async def patient_choices(ctx: FhirContext, *, name: str, seen_by: str | None,
                          now: datetime) -> list[PatientChoice]:
    """Up to `PICKER_LIMIT` patients matching `name` (any when empty), sorted by name."""
    if seen_by is None:
        params = [("_count", str(PICKER_LIMIT)), *((("name", name),) if name else ())]
        found = (await search(ctx, "Patient", params, now=now)).matches
    else:
        found = await _seen_patients(ctx, seen_by, now=now)
        found = [p for p in found if name.casefold() in _choice(p).name.casefold()]
    return sorted((_choice(p) for p in found), key=lambda c: c.name.casefold())[:PICKER_LIMIT]


async def chosen_patient(ctx: FhirContext, patient_id: str, *, seen_by: str | None,
                         now: datetime) -> PatientChoice | None:
    """The patient when it exists and the user may choose it; None otherwise."""
    if seen_by is not None:
        return next((_choice(p) for p in await _seen_patients(ctx, seen_by, now=now)
                     if p.id == patient_id), None)
    matches = (await search(ctx, "Patient", [("_id", patient_id)], now=now)).matches
    return _choice(matches[0]) if matches else None


async def _seen_patients(ctx: FhirContext, practitioner: str, *,
                         now: datetime) -> list[StoredResource]:
    """Patients of the practitioner's appointments, through one search with `_include`."""
    result = await search(ctx, "Appointment", [("actor", practitioner),
                                               ("_include", "Appointment:patient"),
                                               ("_count", "1000")], now=now)
    return [r for r in result.included if r.resource_type == "Patient"]


def _choice(patient: StoredResource) -> PatientChoice:
    body = orjson.loads(patient.body or b"{}")
    names = body.get("name") or [{}]
    official = next((n for n in names if n.get("use") == "official"), names[0])
    text = official.get("text") or " ".join([*official.get("given", []),
                                             official.get("family", "")]).strip()
    return PatientChoice(id=patient.id, name=text or patient.id,
                         birth_date=body.get("birthDate", ""))
