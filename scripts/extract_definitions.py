"""Copy the parts of the official R4 definitions the server needs into the package.

Run from the repository root with the shared definitions beside it:
    python scripts/extract_definitions.py ../shared/fhir-r4
The product never reads the shared folder at run time; it ships these extracts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TYPES = {
    "Schedule", "Slot", "Appointment", "AppointmentResponse", "Patient", "Practitioner",
    "PractitionerRole", "Location", "Device", "HealthcareService", "Organization",
    "Communication", "CommunicationRequest", "AuditEvent", "Subscription",
}
COMMON_BASES = {"Resource", "DomainResource"}
OUT = Path(__file__).resolve().parents[1] / "fhir_server" / "fhir" / "definitions"


def _resources(bundle: dict) -> list[dict]:
    return [entry["resource"] for entry in bundle["entry"]]


def main(source: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    params = [p for p in _resources(json.loads((source / "search-parameters.json").read_text()))
              if set(p["base"]) & (TYPES | COMMON_BASES)]
    structures = [s for s in _resources(
        json.loads((source / "structure-definitions-summary.json").read_text()))
        if s.get("type") in TYPES]
    (OUT / "search-parameters.json").write_text(json.dumps(params, indent=1, sort_keys=True))
    (OUT / "structure-definitions.json").write_text(json.dumps(structures, indent=1, sort_keys=True))
    (OUT / "required-valuesets.json").write_text((source / "required-valuesets.json").read_text())
    (OUT / "compartment-patient.json").write_text(
        (source / "compartmentdefinition-patient.json").read_text())
    print(f"{len(params)} search parameters, {len(structures)} structure definitions -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/fhir-r4"))
