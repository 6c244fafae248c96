"""The patient compartment: clauses from the R4 definition, membership from extracted entries."""

from pathlib import Path
from typing import Any

import pytest

from fhir_server.auth.compartment import (
    PatientCompartment,
    PractitionerCompartment,
    compartment_params,
)
from fhir_server.fhir.search.extract import extract_index
from fhir_server.fhir.search.model import Clause, IdMatch, ReferenceEntry, ReferenceMatch
from fhir_server.fhir.search.parameters import SearchParameterRegistry, load_registry

CAPABILITY_DIR = Path(__file__).resolve().parents[3] / "capability"
BASE = "https://scheduler.example/fhir"
MINE = PatientCompartment("p1")


@pytest.fixture(scope="module")
def registry() -> SearchParameterRegistry:
    """The registry the server builds at start-up."""
    return load_registry(CAPABILITY_DIR)


def make_appointment(patient: str = "Patient/p1", **overrides: Any) -> dict[str, Any]:
    """A booked appointment of `patient` with a practitioner."""
    return {"resourceType": "Appointment", "id": "a1", "status": "booked",
            "participant": [{"actor": {"reference": patient}, "status": "accepted"},
                            {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"}],
            **overrides}


def make_communication(kind: str = "Communication", **fields: Any) -> dict[str, Any]:
    """A reminder message (or request) with only the given references."""
    status = "completed" if kind == "Communication" else "active"
    return {"resourceType": kind, "id": "c1", "status": status, **fields}


@pytest.mark.parametrize(("resource_type", "params"), [
    ("Appointment", ("actor",)),
    ("AppointmentResponse", ("actor",)),
    ("Communication", ("subject", "sender", "recipient")),
    ("CommunicationRequest", ("subject", "sender", "recipient", "requester")),
])
def test_search_clause_is_an_or_over_the_definitions_params(resource_type: str,
                                                            params: tuple[str, ...]) -> None:
    assert MINE.search_clause(resource_type) == Clause(
        tuple(ReferenceMatch(param, "Patient", "p1") for param in params))


def test_patient_is_in_its_own_compartment_by_id() -> None:
    assert MINE.search_clause("Patient") == Clause(
        (IdMatch(("p1",)), ReferenceMatch("link", "Patient", "p1")))
    assert MINE.contains("Patient", {"resourceType": "Patient", "id": "p1"})
    assert not MINE.contains("Patient", {"resourceType": "Patient", "id": "p2"})


@pytest.mark.parametrize("resource_type", ["Slot", "Schedule", "Practitioner", "Location"])
def test_directory_data_is_not_confined(resource_type: str) -> None:
    assert not MINE.confines(resource_type)
    assert MINE.search_clause(resource_type) is None
    assert MINE.admits(resource_type, {"resourceType": resource_type, "id": "x"})


def test_schedule_stays_faithful_to_the_definition_but_is_exempt() -> None:
    # R4 lists Schedule.actor; issue 6 makes schedules readable directory data anyway.
    assert compartment_params()["Schedule"] == ("actor",)
    assert "Slot" not in compartment_params()


def test_contains_appointment(registry: SearchParameterRegistry) -> None:
    mine = make_appointment()
    assert MINE.contains("Appointment", mine, registry=registry)
    assert MINE.admits("Appointment", mine, registry=registry)
    theirs = make_appointment("Patient/p2")
    assert not MINE.contains("Appointment", theirs, registry=registry)
    assert not MINE.admits("Appointment", theirs, registry=registry)


def test_contains_from_index_entries(registry: SearchParameterRegistry) -> None:
    entries = extract_index(make_appointment(), registry)
    assert MINE.contains("Appointment", entries)
    assert not PatientCompartment("d1").contains("Appointment", entries)  # type matters


def test_absolute_references_count_only_when_local(registry: SearchParameterRegistry) -> None:
    local = make_appointment(f"{BASE}/Patient/p1")
    assert MINE.contains("Appointment", local, registry=registry, base_url=BASE)
    foreign = make_appointment("https://other.example/fhir/Patient/p1")
    assert not MINE.contains("Appointment", foreign, registry=registry, base_url=BASE)


def test_contains_appointment_response(registry: SearchParameterRegistry) -> None:
    response = {"resourceType": "AppointmentResponse", "id": "r1", "participantStatus":
                "accepted", "appointment": {"reference": "Appointment/a1"},
                "actor": {"reference": "Patient/p1"}}
    assert MINE.contains("AppointmentResponse", response, registry=registry)
    response["actor"] = {"reference": "Practitioner/d1"}
    assert not MINE.contains("AppointmentResponse", response, registry=registry)


@pytest.mark.parametrize("kind", ["Communication", "CommunicationRequest"])
@pytest.mark.parametrize("field", ["subject", "recipient", "sender"])
def test_contains_communications(registry: SearchParameterRegistry, kind: str,
                                 field: str) -> None:
    reference = {"reference": "Patient/p1"}
    value = [reference] if field == "recipient" else reference
    assert MINE.contains(kind, make_communication(kind, **{field: value}), registry=registry)
    other = make_communication(kind, **{field: [{"reference": "Patient/p2"}]
                                        if field == "recipient" else {"reference": "Patient/p2"}})
    assert not MINE.contains(kind, other, registry=registry)


def test_communication_request_requester(registry: SearchParameterRegistry) -> None:
    request = make_communication("CommunicationRequest", requester={"reference": "Patient/p1"})
    assert MINE.contains("CommunicationRequest", request, registry=registry)
    assert not MINE.contains("Communication", make_communication(), registry=registry)


def test_audit_events_are_confined_by_patient() -> None:
    assert MINE.confines("AuditEvent")
    assert MINE.admits("AuditEvent", [ReferenceEntry("patient", "Patient", "p1")])
    assert not MINE.admits("AuditEvent", [ReferenceEntry("patient", "Patient", "p2")])
    assert not MINE.admits("AuditEvent", [ReferenceEntry("agent", "Patient", "p1")])


DR_D1 = PractitionerCompartment("d1")


@pytest.mark.parametrize(("resource_type", "params"), [
    ("Appointment", ("actor",)),
    ("AppointmentResponse", ("actor",)),
    ("Communication", ("sender", "recipient")),
    ("CommunicationRequest", ("sender", "recipient", "requester")),
])
def test_practitioner_clause_follows_the_r4_practitioner_compartment(
        resource_type: str, params: tuple[str, ...]) -> None:
    assert DR_D1.confines(resource_type)
    assert DR_D1.search_clause(resource_type) == Clause(
        tuple(ReferenceMatch(param, "Practitioner", "d1") for param in params))


@pytest.mark.parametrize("resource_type", ["Slot", "Schedule", "Patient", "Location"])
def test_practitioner_compartment_leaves_directory_and_patients_alone(resource_type: str) -> None:
    assert not DR_D1.confines(resource_type)
    assert DR_D1.search_clause(resource_type) is None
    assert DR_D1.admits(resource_type, {"resourceType": resource_type, "id": "x"})


def test_practitioner_compartment_admits_own_appointments(
        registry: SearchParameterRegistry) -> None:
    assert DR_D1.admits("Appointment", make_appointment(), registry=registry)
    assert not PractitionerCompartment("d2").admits("Appointment", make_appointment(),
                                                    registry=registry)
    absolute = make_appointment(participant=[{"actor": {"reference": f"{BASE}/Practitioner/d1"},
                                              "status": "accepted"}])
    assert DR_D1.admits("Appointment", absolute, registry=registry, base_url=BASE)
    # a Patient with the same id is not the practitioner
    assert not DR_D1.admits("Appointment", make_appointment("Patient/d1", participant=[
        {"actor": {"reference": "Patient/d1"}, "status": "accepted"}]), registry=registry)
