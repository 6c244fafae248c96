"""Granted scopes of a user's authorization: requested ∩ registered ∩ role."""

from __future__ import annotations

import pytest

from fhir_server.auth.roles import Role, definition_of
from fhir_server.auth.scopes import InvalidScope
from fhir_server.auth.server.scope_grant import narrowed_to_role, within_registration

REGISTERED = ("openid", "fhirUser", "launch/patient", "patient/*.cruds",
              "user/Appointment.rs?status=booked", "system/*.rs")


def test_a_registered_wildcard_covers_narrower_requests() -> None:
    assert within_registration(["patient/Appointment.rs", "patient/Slot.read",
                                "openid", "offline_access"], REGISTERED) == (
        "patient/Appointment.rs", "patient/Slot.read", "openid")


def test_a_registered_constraint_must_be_kept_and_system_scopes_never_go_to_users() -> None:
    assert within_registration(["user/Appointment.rs"], REGISTERED) == ()
    assert within_registration(["user/Appointment.rs?status=booked&patient=p1"],
                               REGISTERED) == ("user/Appointment.rs?status=booked&patient=p1",)
    assert within_registration(["user/Appointment.cruds?status=booked"], REGISTERED) == ()
    assert within_registration(["system/*.rs"], REGISTERED) == ()


def test_a_malformed_resource_scope_is_an_error() -> None:
    with pytest.raises(InvalidScope):
        within_registration(["patient/Appointment.xyz"], REGISTERED)


def test_scopes_are_cut_to_the_role() -> None:
    patient = definition_of(Role.PATIENT)
    assert narrowed_to_role(["patient/Patient.cruds", "patient/Appointment.read",
                             "patient/AuditEvent.rs", "patient/*.cruds", "openid"], patient) == (
        "patient/Patient.rs", "patient/Appointment.read", "patient/*.cruds", "openid")
    staff = definition_of(Role.STAFF)
    assert narrowed_to_role(["user/Schedule.cruds"], staff) == ("user/Schedule.rs",)
