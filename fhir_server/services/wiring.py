"""Assemble the FhirContext every entry point uses (API, CLI, workers, benchmarks)."""

from __future__ import annotations

from pathlib import Path

from fhir_server.fhir.search.parameters import load_registry
from fhir_server.services.appointment_responses import AppointmentResponseRules
from fhir_server.services.appointment_rules import AppointmentRules
from fhir_server.services.context import FhirContext, TypeRules
from fhir_server.services.slot_generation import ScheduleRules
from fhir_server.store.protocol import Store


def type_rules() -> dict[str, TypeRules]:
    """The domain rules that own some types' writes (booking, slot generation, responses)."""
    return {"Schedule": ScheduleRules(), "Appointment": AppointmentRules(),
            "AppointmentResponse": AppointmentResponseRules()}


def make_context(store: Store, *, capability_dir: Path, base_url: str) -> FhirContext:
    """The context over `store`, with the search registry and every type's rules."""
    return FhirContext(store=store, registry=load_registry(capability_dir), base_url=base_url,
                       rules=type_rules())
