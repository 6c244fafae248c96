"""The registry: which parameters the server supports, and how FHIRPath is made evaluable."""

import json
from pathlib import Path

import pytest

from fhir_server.fhir.search.parameters import (
    SearchParameterRegistry,
    load_registry,
    packaged_definitions,
    to_evaluable,
)


def test_slot_parameters_include_common_and_custom_end(registry: SearchParameterRegistry) -> None:
    slot = registry.for_type("Slot")
    assert set(slot) == {
        "_id", "_lastUpdated", "_tag", "_profile", "_security", "_source",
        "appointment-type", "identifier", "schedule", "service-category", "service-type",
        "specialty", "start", "status", "end",
    }
    end = slot["end"]
    assert (end.url, end.type, end.expression, end.base) == (
        "http://fhir-scheduler.org/fhir/SearchParameter/Slot-end", "date", "Slot.end", ("Slot",))
    assert end.comparators == ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
    assert registry.evaluate(end, {"resourceType": "Slot", "end": "2024-06-01T10:00:00Z"}) == [
        "2024-06-01T10:00:00Z"]


def test_without_capability_dir_there_is_no_slot_end() -> None:
    assert load_registry(None).get("Slot", "end") is None
    assert load_registry(None).get("Slot", "start") is not None


def test_unindexable_and_uncompilable_parameters_are_excluded(registry: SearchParameterRegistry) -> None:
    excluded = registry.excluded
    assert "http://hl7.org/fhir/SearchParameter/Location-near" in excluded
    assert "http://hl7.org/fhir/SearchParameter/individual-phonetic" in excluded
    assert "http://hl7.org/fhir/SearchParameter/DomainResource-text" in excluded
    assert registry.get("Location", "near") is None
    assert registry.get("Patient", "phonetic") is None
    assert registry.get("Patient", "_text") is None
    broken = {"resourceType": "SearchParameter", "url": "urn:broken", "code": "broken",
              "base": ["Slot"], "type": "token", "expression": "Slot.status.where(", "status": "active"}
    chained = {**broken, "url": "urn:chained", "code": "chained",
               "expression": "Slot.schedule.resolve().actor"}
    only = SearchParameterRegistry([broken, chained])
    assert only.get("Slot", "broken") is None
    assert only.get("Slot", "chained") is None
    assert "fhirpathpy cannot compile" in only.excluded["urn:broken"]
    assert "resolve" in only.excluded["urn:chained"]


def test_every_kept_parameter_compiles_and_is_an_indexable_type(registry: SearchParameterRegistry) -> None:
    codes = {(d["base"][0], d["code"]) for d in packaged_definitions()}
    kept = [(base, code) for base, code in codes if registry.get(base, code) is not None]
    assert len(kept) == len(codes) - 6  # _text, _content, _query, near, two phonetic
    assert {registry.get(b, c).type for b, c in kept} == {"token", "reference", "date", "string", "uri"}  # type: ignore[union-attr]


def test_multi_base_union_expressions_pick_the_right_branch(registry: SearchParameterRegistry) -> None:
    practitioner = {"resourceType": "Practitioner", "address": [{"city": "Lyon"}],
                    "telecom": [{"system": "phone", "value": "555"}, {"system": "email", "value": "a@b"}]}
    assert registry.evaluate(registry.for_type("Practitioner")["address-city"], practitioner) == ["Lyon"]
    assert registry.evaluate(registry.for_type("Practitioner")["phone"], practitioner) == [
        {"system": "phone", "value": "555"}]


def test_as_datetime_choice_expressions_work(registry: SearchParameterRegistry) -> None:
    death = registry.for_type("Patient")["death-date"]
    assert death.expression == "(Patient.deceased as dateTime)"
    assert registry.evaluate(death, {"resourceType": "Patient", "deceasedDateTime": "2020-05-01"}) == ["2020-05-01"]
    assert registry.evaluate(death, {"resourceType": "Patient", "deceasedBoolean": True}) == []
    occurrence = registry.for_type("CommunicationRequest")["occurrence"]
    assert registry.evaluate(occurrence, {"resourceType": "CommunicationRequest",
                                          "occurrencePeriod": {"start": "2024-01-01"}}) == []


def test_resolve_is_rewritten_to_a_reference_type_filter(registry: SearchParameterRegistry) -> None:
    patient = registry.for_type("Appointment")["patient"]
    assert "resolve()" not in patient.fhirpath
    appointment = {"resourceType": "Appointment", "participant": [
        {"actor": {"reference": "Patient/p1"}}, {"actor": {"reference": "Practitioner/d1"}},
        {"actor": {"reference": "https://other.example/fhir/Patient/p2/_history/3"}},
        {"actor": {"reference": "PatientGroup/x"}}, {"actor": {"display": "walk-in"}}]}
    assert registry.evaluate(patient, appointment) == [
        {"reference": "Patient/p1"},
        {"reference": "https://other.example/fhir/Patient/p2/_history/3"}]


def test_union_of_resolve_filters_across_branches(registry: SearchParameterRegistry) -> None:
    audit_patient = registry.for_type("AuditEvent")["patient"]
    event = {"resourceType": "AuditEvent",
             "agent": [{"who": {"reference": "Patient/p1"}}, {"who": {"reference": "Practitioner/d"}}],
             "entity": [{"what": {"reference": "Patient/p2"}}, {"what": {"reference": "Appointment/a"}}]}
    assert registry.evaluate(audit_patient, event) == [{"reference": "Patient/p1"}, {"reference": "Patient/p2"}]


def test_resource_rooted_expressions_evaluate_from_the_root() -> None:
    assert to_evaluable("Resource.meta.lastUpdated") == "meta.lastUpdated"
    assert to_evaluable("Resource.meta.tag | DomainResource.text") == "meta.tag | text"
    assert to_evaluable("MyResource.x") == "MyResource.x"


def test_custom_definition_overrides_and_broken_files_fail_loudly(tmp_path: Path) -> None:
    custom = {"resourceType": "SearchParameter", "url": "urn:custom-status", "code": "status",
              "base": ["Slot"], "type": "token", "expression": "Slot.comment", "status": "active"}
    (tmp_path / "SearchParameter-Slot-status.json").write_text(json.dumps(custom))
    assert load_registry(tmp_path).get("Slot", "status").url == "urn:custom-status"  # type: ignore[union-attr]
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    (broken_dir / "SearchParameter-x.json").write_text("{not json")
    with pytest.raises(ValueError, match="SearchParameter-x.json"):
        load_registry(broken_dir)
