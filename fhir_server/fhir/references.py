"""The patients a resource refers to: its `Patient/<id>` references, found in the JSON.

Pure. The versioning service keeps them with each stored version (`VersionWrite.patients`), so
that the audit trail names the patients a read concerned without scanning the body again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhir_server.fhir.ids import FHIR_ID


def patient_references(resource: Any) -> Iterator[str]:
    """Every `Patient/<id>` reference in a resource (contained resources excluded)."""
    if isinstance(resource, dict):
        for key, value in resource.items():
            if key == "reference" and isinstance(value, str):
                patient = patient_of_reference(value)
                if patient is not None:
                    yield patient
            elif key != "contained":
                yield from patient_references(value)
    elif isinstance(resource, list):
        for item in resource:
            yield from patient_references(item)


def referenced_patients(resource: Any) -> tuple[str, ...]:
    """The distinct `Patient/<id>` references of a resource, in first-seen order, leaving out
    any whose id is not a valid FHIR id (no patient here has it)."""
    return tuple(patient for patient in dict.fromkeys(patient_references(resource))
                 if FHIR_ID.fullmatch(patient, len("Patient/")))


def patient_of_reference(reference: str) -> str | None:
    """`Patient/<id>` of a relative, absolute or versioned Patient reference, else None."""
    parts = reference.rsplit("/_history/", 1)[0].rstrip("/").split("/")
    return f"Patient/{parts[-1]}" if len(parts) >= 2 and parts[-2] == "Patient" else None
