"""The individual checks, on shapes the served resources do not exercise yet."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fhir_server.fhir.errors import UnsupportedResourceType, ValidationFailed
from fhir_server.fhir.validation import validate_resource
from fhir_server.fhir.validation.bindings import binding_issues
from fhir_server.fhir.validation.definitions import (
    RequiredBinding,
    definition_types,
    resource_index,
)
from fhir_server.fhir.validation.references import referenced_type
from fhir_server.fhir.validation.walker import Node

_SYSTEM = "http://hl7.org/fhir/appointmentstatus"
_BINDING = RequiredBinding(value_set="http://hl7.org/fhir/ValueSet/appointmentstatus",
                           codes=frozenset({"booked"}),
                           system_codes=frozenset({(_SYSTEM, "booked")}))


def bound_node(type_code: str, value: object) -> Node:
    """A node of a made-up element of `type_code` bound to the appointment status codes."""
    status = next(c for c in resource_index("Appointment").root.children
                  if c.path == "Appointment.status")
    return Node(replace(status, binding=_BINDING), type_code, value, "X.y")


@pytest.mark.parametrize(("value", "valid"), [
    ({"system": _SYSTEM, "code": "booked"}, True),
    ({"code": "booked"}, True),
    ({"system": "http://other", "code": "booked"}, False),
    ({"system": _SYSTEM, "code": "bogus"}, False),
])
def test_coding_bindings_match_system_and_code(value: dict[str, str], valid: bool) -> None:
    issues = binding_issues(bound_node("Coding", value))

    assert [(i.code, i.expression) for i in issues] == ([] if valid else [("code-invalid", ("X.y",))])


@pytest.mark.parametrize(("value", "valid"), [
    ({"coding": [{"system": "http://other", "code": "x"}, {"system": _SYSTEM, "code": "booked"}]},
     True),
    ({"coding": [{"system": _SYSTEM, "code": "bogus"}]}, False),
    ({"text": "booked"}, False),
])
def test_codeable_concept_needs_one_coding_from_the_value_set(value: dict[str, object],
                                                              valid: bool) -> None:
    issues = binding_issues(bound_node("CodeableConcept", value))

    assert [(i.code, i.expression) for i in issues] == ([] if valid else [("code-invalid", ("X.y",))])


@pytest.mark.parametrize(("reference", "expected"), [
    ("Patient/p1", "Patient"),
    ("Patient/p1/_history/3", "Patient"),
    ("https://ehr.example.org/fhir/Schedule/s1", "Schedule"),
    ("https://ehr.example.org/fhir/Schedule/s1/_history/2", "Schedule"),
    ("Schedule?identifier=urn:x|7", None),
    ("p1", None),
    ("Nonsense/p1", None),
])
def test_referenced_type(reference: str, expected: str | None) -> None:
    assert referenced_type(reference) == expected


def test_every_packaged_definition_indexes_and_no_invariant_is_skipped() -> None:
    skipped = {t: resource_index(t).skipped_invariants for t in definition_types()}

    assert {"AuditEvent", "Subscription"} <= set(skipped)
    assert all(keys == () for keys in skipped.values())


def test_audit_events_are_validated_generically() -> None:
    event = {
        "resourceType": "AuditEvent", "type": {"code": "rest"}, "action": "X",
        "recorded": "2025-03-01T09:00:00Z", "agent": [{"requestor": True, "network": {"type": "9"}}],
        "source": {"observer": {"reference": "Location/room-4"}},
    }

    with pytest.raises(ValidationFailed) as caught:
        validate_resource(event, resource_type="AuditEvent")

    assert {(i.code, i.expression[0]) for i in caught.value.issues} == {
        ("code-invalid", "AuditEvent.action"),
        ("code-invalid", "AuditEvent.agent[0].network.type"),
        ("invalid", "AuditEvent.source.observer"),
    }


def test_subscriptions_are_validated_generically() -> None:
    subscription = {"resourceType": "Subscription", "status": "requested",
                    "reason": "reminders", "channel": {"payload": "application/fhir+json"}}

    with pytest.raises(ValidationFailed) as caught:
        validate_resource(subscription, resource_type="Subscription")

    assert {(i.code, i.expression[0]) for i in caught.value.issues} == {
        ("required", "Subscription.criteria"), ("required", "Subscription.channel.type")}


def test_a_type_without_a_packaged_definition_is_not_supported() -> None:
    with pytest.raises(UnsupportedResourceType):
        validate_resource({"resourceType": "Bundle", "type": "batch"}, resource_type="Bundle")
