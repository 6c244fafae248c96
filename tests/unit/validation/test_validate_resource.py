"""validate_resource: what a client sees when it writes a resource."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_server.fhir.errors import InvalidRequest, Issue, ValidationFailed
from fhir_server.fhir.resource_types import CLIENT_WRITTEN_TYPES
from fhir_server.fhir.validation import validate_resource
from tests.unit.validation.factories import (
    VALID_RESOURCES,
    make_appointment,
    make_schedule,
    make_slot,
)


def failures(resource: dict[str, Any]) -> list[Issue]:
    """The issues ValidationFailed carries for `resource` (fails the test if it passes)."""
    with pytest.raises(ValidationFailed) as caught:
        validate_resource(resource, resource_type=resource["resourceType"])
    return caught.value.issues


def codes_at(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """(code, expression) of every issue, the shape tests assert on."""
    return {(issue.code, issue.expression[0]) for issue in failures(resource)}


def test_every_served_type_has_a_valid_example() -> None:
    assert set(VALID_RESOURCES) == set(CLIENT_WRITTEN_TYPES)


@pytest.mark.parametrize("resource_type", sorted(VALID_RESOURCES))
def test_valid_resources_pass_unchanged(resource_type: str) -> None:
    resource = copy.deepcopy(VALID_RESOURCES[resource_type])

    validate_resource(resource, resource_type=resource_type)

    assert resource == VALID_RESOURCES[resource_type]


@pytest.mark.parametrize("payload", [[], "Appointment", None, 42])
def test_a_non_object_is_an_invalid_request(payload: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_resource(payload, resource_type="Appointment")
    assert type(caught.value) is InvalidRequest
    assert caught.value.issues[0].code == "invalid"


def test_a_missing_resource_type_is_an_invalid_request() -> None:
    resource = make_slot()
    del resource["resourceType"]

    with pytest.raises(InvalidRequest) as caught:
        validate_resource(resource, resource_type="Slot")

    assert caught.value.issues[0].expression == ("resourceType",)


def test_a_resource_type_mismatch_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_resource(make_slot(), resource_type="Appointment")

    assert caught.value.issues[0].expression == ("resourceType",)
    assert "'Slot'" in caught.value.issues[0].diagnostics


def test_an_unknown_status_code_is_code_invalid() -> None:
    issues = failures(make_appointment(status="bogus"))

    assert [(i.code, i.expression) for i in issues] == [("code-invalid", ("Appointment.status",))]
    assert "'bogus'" in issues[0].diagnostics
    assert "http://hl7.org/fhir/ValueSet/appointmentstatus" in issues[0].diagnostics


def test_bindings_are_checked_in_nested_and_repeating_elements() -> None:
    role = copy.deepcopy(VALID_RESOURCES["PractitionerRole"])
    role["availableTime"][0]["daysOfWeek"] = ["mon", "someday"]
    appointment = make_appointment()
    appointment["participant"][1]["required"] = "maybe"

    assert codes_at(role) == {("code-invalid", "PractitionerRole.availableTime[0].daysOfWeek[1]")}
    assert codes_at(appointment) == {("code-invalid", "Appointment.participant[1].required")}


def test_an_empty_participant_list_is_missing() -> None:
    assert codes_at(make_appointment(participant=[])) == {("required", "Appointment.participant")}


def test_an_absent_participant_list_is_missing() -> None:
    appointment = make_appointment()
    del appointment["participant"]

    assert codes_at(appointment) == {("required", "Appointment.participant")}


def test_a_participant_without_status_is_missing_it() -> None:
    appointment = make_appointment()
    del appointment["participant"][2]["status"]

    issues = failures(appointment)

    assert [(i.code, i.expression) for i in issues] == [
        ("required", ("Appointment.participant[2].status",))]


def test_a_primitive_given_only_as_an_extension_counts_as_present() -> None:
    absent = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                             "valueCode": "unknown"}]}
    appointment = make_appointment()
    del appointment["participant"][0]["status"]
    appointment["participant"][0]["_status"] = absent

    validate_resource(appointment, resource_type="Appointment")


@pytest.mark.parametrize("element", ["schedule", "start", "end", "status"])
def test_slot_required_elements(element: str) -> None:
    slot = make_slot()
    del slot[element]

    assert codes_at(slot) == {("required", f"Slot.{element}")}


def test_schedule_needs_an_actor() -> None:
    assert codes_at(make_schedule(actor=[])) == {("required", "Schedule.actor")}


def test_a_slot_referencing_a_patient_as_its_schedule_is_invalid() -> None:
    issues = failures(make_slot(schedule={"reference": "Patient/p1"}))

    assert [(i.code, i.expression) for i in issues] == [("invalid", ("Slot.schedule",))]
    assert "Patient" in issues[0].diagnostics and "Schedule" in issues[0].diagnostics


def test_a_participant_actor_of_a_wrong_type_is_invalid() -> None:
    appointment = make_appointment()
    appointment["participant"][1]["actor"] = {"reference": "Slot/slot-1"}

    assert codes_at(appointment) == {("invalid", "Appointment.participant[1].actor")}


@pytest.mark.parametrize("reference", [
    "Schedule/sched-1/_history/2",
    "https://ehr.example.org/fhir/Schedule/sched-1",
    "urn:uuid:0b7a3c0e-7f7e-4a43-9c40-0f3c1f1f2b11",
    "#sched",
    "https://example.org/some/other/thing",
])
def test_references_that_are_allowed_or_resolved_later(reference: str) -> None:
    validate_resource(make_slot(schedule={"reference": reference}), resource_type="Slot")


def test_identifier_only_references_are_not_checked() -> None:
    slot = make_slot(schedule={"identifier": {"system": "urn:x", "value": "7"}})

    validate_resource(slot, resource_type="Slot")


def test_an_absolute_reference_to_a_wrong_type_is_invalid() -> None:
    slot = make_slot(schedule={"reference": "https://ehr.example.org/fhir/Patient/p1"})

    assert codes_at(slot) == {("invalid", "Slot.schedule")}


def test_a_declared_reference_type_must_be_a_target() -> None:
    slot = make_slot(schedule={"reference": "Schedule/sched-1", "type": "Patient"})

    assert codes_at(slot) == {("invalid", "Slot.schedule.type")}


def test_a_relative_reference_that_is_not_type_slash_id_is_invalid() -> None:
    slot = make_slot(schedule={"reference": "sched-1"})

    assert codes_at(slot) == {("invalid", "Slot.schedule.reference")}


def test_start_without_end_violates_app_2() -> None:
    appointment = make_appointment()
    del appointment["end"]

    issues = failures(appointment)

    assert [(i.code, i.expression) for i in issues] == [
        ("invariant", ("Appointment",)), ("invariant", ("Appointment",))]
    assert [i.diagnostics.split(":")[0] for i in issues] == ["app-2", "app-3"]
    assert issues[0].diagnostics == "app-2: Either start and end are specified, or neither"


def test_a_booked_appointment_without_times_violates_app_3() -> None:
    appointment = make_appointment()
    del appointment["start"], appointment["end"]

    issues = failures(appointment)

    assert [(i.code, i.expression) for i in issues] == [("invariant", ("Appointment",))]
    assert issues[0].diagnostics.startswith("app-3: Only proposed or cancelled appointments")


def test_a_proposed_appointment_may_lack_times() -> None:
    appointment = make_appointment(status="proposed")
    del appointment["start"], appointment["end"]

    validate_resource(appointment, resource_type="Appointment")


def test_a_cancelation_reason_on_a_booked_appointment_violates_app_4() -> None:
    issues = failures(make_appointment(cancelationReason={"text": "patient called"}))

    assert [(i.code, i.expression, i.diagnostics[:6]) for i in issues] == [
        ("invariant", ("Appointment",), "app-4:")]


def test_invariants_on_nested_elements_name_the_instance() -> None:
    appointment = make_appointment()
    appointment["participant"][1] = {"status": "accepted"}  # neither type nor actor: app-1
    appointment["extension"] = [{"url": "http://example.org/x"}]  # no value: ext-1

    issues = failures(appointment)

    assert {(i.code, i.expression[0], i.diagnostics[:6]) for i in issues} == {
        ("invariant", "Appointment.participant[1]", "app-1:"),
        ("invariant", "Appointment.extension[0]", "ext-1:"),
    }


def test_organization_invariants() -> None:
    organization = copy.deepcopy(VALID_RESOURCES["Organization"])
    del organization["name"]
    organization["telecom"][0]["use"] = "home"

    assert codes_at(organization) == {
        ("invariant", "Organization"), ("invariant", "Organization.telecom[0]")}


def test_an_unknown_element_is_a_structure_issue() -> None:
    issues = failures(make_appointment(foo=1))

    assert [(i.code, i.expression) for i in issues] == [("structure", ("Appointment.foo",))]


def test_a_wrong_json_shape_names_the_element() -> None:
    appointment = make_appointment(status=["booked"])
    appointment["participant"][0]["actor"] = {"reference": "Patient/p1", "extra": True}

    assert codes_at(appointment) == {
        ("structure", "Appointment.status"),
        ("structure", "Appointment.participant[0].actor.extra"),
    }


def test_a_malformed_primitive_is_a_value_issue() -> None:
    appointment = make_appointment(minutesDuration=0, end="tomorrow")

    assert codes_at(appointment) == {
        ("value", "Appointment.minutesDuration"), ("value", "Appointment.end")}


@pytest.mark.parametrize("bad_id", ["has space", "a" * 65, "", "sl/ash"])
def test_an_invalid_id_is_reported_once(bad_id: str) -> None:
    issues = failures(make_slot(id=bad_id))

    assert [(i.code, i.expression) for i in issues] == [("value", ("Slot.id",))]


def test_a_64_character_id_and_client_meta_are_accepted() -> None:
    slot = make_slot(id="A-z.9" + "x" * 59,
                     meta={"versionId": "17", "lastUpdated": "2020-01-01T00:00:00Z"})

    validate_resource(slot, resource_type="Slot")


def test_several_problems_are_all_reported() -> None:
    appointment = make_appointment(status="bogus", foo=1, participant=[
        {"actor": {"reference": "Patient/p1"}},
        {"actor": {"reference": "Slot/s1"}, "status": "accepted"},
    ])
    del appointment["end"]

    assert codes_at(appointment) == {
        ("structure", "Appointment.foo"),
        ("code-invalid", "Appointment.status"),
        ("required", "Appointment.participant[0].status"),
        ("invalid", "Appointment.participant[1].actor"),
        ("invariant", "Appointment"),  # app-2 and app-3
    }
    assert len(failures(appointment)) == 6
