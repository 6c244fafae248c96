"""SMART scope parsing: v2 with constraints, v1 normalised to v2, non-resource scopes, errors."""

import pytest

from fhir_server.auth.scopes import (
    GrantedScopes,
    InvalidScope,
    ResourceScope,
    parse_resource_scope,
    parse_scopes,
)
from fhir_server.fhir.errors import InvalidRequest


def test_v2_scope_with_constraints() -> None:
    scope = parse_resource_scope("patient/Appointment.rs?status=booked&service-type=x|57")
    assert scope == ResourceScope("patient", "Appointment", frozenset("rs"),
                                  (("status", "booked"), ("service-type", "x|57")))
    assert scope.to_v2() == "patient/Appointment.rs?status=booked&service-type=x|57"


@pytest.mark.parametrize(("text", "expected"), [
    ("user/Slot.read", "rs"),
    ("user/Slot.write", "cud"),
    ("user/Slot.*", "cruds"),
    ("system/*.read", "rs"),
    ("user/Slot.cruds", "cruds"),
    ("user/Slot.cud", "cud"),
    ("patient/Appointment.s", "s"),
])
def test_permissions_normalised_to_v2(text: str, expected: str) -> None:
    assert parse_resource_scope(text).permissions == frozenset(expected)


def test_non_resource_scopes_grant_nothing_but_stay_visible() -> None:
    granted = parse_scopes("openid fhirUser launch launch/patient offline_access online_access "
                           "profile patient/Slot.rs")
    assert granted.other == ("openid", "fhirUser", "launch", "launch/patient", "offline_access",
                             "online_access", "profile")
    assert granted.has("offline_access") and not granted.has("patient/Slot.rs")
    assert [s.resource_type for s in granted.resource_scopes] == ["Slot"]


def test_list_claim_and_empty_claims() -> None:
    assert parse_scopes(["user/Slot.rs", "openid"]).allows({"user"}, "Slot", "s")
    assert parse_scopes(None) == GrantedScopes()
    assert parse_scopes("   ") == GrantedScopes()


@pytest.mark.parametrize("bad", [
    "patient/Appointment.sr",            # out of order
    "patient/Appointment.rr",            # repeated
    "patient/Appointment.rx",            # unknown letter
    "patient/Appointment.",              # nothing granted
    "patient/Appointment",               # no permissions at all
    "patient/appointment.rs",            # not a type name
    "user/Slot.read?status=free",        # v1 takes no constraints
    "user/Slot.rs?status",               # constraint without value
    "user/Slot.rs?=free",                # constraint without name
    "system/.rs",
])
def test_malformed_resource_scopes_are_errors(bad: str) -> None:
    with pytest.raises(InvalidScope) as raised:
        parse_scopes(f"openid {bad}")
    assert bad in str(raised.value)
    assert isinstance(raised.value, InvalidRequest)


def test_allows_checks_context_type_and_permission() -> None:
    granted = parse_scopes("patient/Appointment.rs user/*.r")
    assert granted.allows({"patient"}, "Appointment", "r")
    assert not granted.allows({"user", "system"}, "Appointment", "s")
    assert granted.allows({"user"}, "Appointment", "r")  # through the wildcard
    assert not granted.allows({"patient"}, "Appointment", "c")
    assert not granted.allows({"patient"}, "Slot", "r")


def test_constraints_are_alternatives_and_an_unconstrained_scope_lifts_them() -> None:
    constrained = parse_scopes("patient/Appointment.rs?status=booked "
                               "patient/Appointment.rs?status=pending")
    assert constrained.constraints_for({"patient"}, "Appointment", "s") == (
        (("status", "booked"),), (("status", "pending"),))
    lifted = parse_scopes("patient/Appointment.rs?status=booked patient/Appointment.r")
    assert lifted.constraints_for({"patient"}, "Appointment", "r") == ()
    assert lifted.constraints_for({"patient"}, "Appointment", "s") == ((("status", "booked"),),)
