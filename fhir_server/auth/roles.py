"""The four roles of issue 6 as data: the most each role may ever do, before scopes narrow it.

A role's permissions are a ceiling. The effective permission of a request is the role's
permissions ∩ the token's scopes (`policy.decide`); a scope can never lift a role above its
ceiling, and a role grants nothing its token's scopes do not.

Choices, against the issue text:

- administrator — "everything, system settings, reports, the audit trail": `cruds` on every
  type except AuditEvent, which is `rs` only: "nobody updates or deletes them through the
  API", and the server alone writes them.
- doctor — "sees own schedule, manages own availability and slots": Schedule `crus` and Slot
  `cruds`, limited to schedules whose actor is the doctor (`manages_own_availability_only`;
  the policy hands the API the doctor's reference to check). No Schedule delete: a schedule
  carries history a clinic keeps. "schedules appointments, handles cancellations":
  Appointment and AppointmentResponse `crus` (a cancellation is an update to `cancelled`;
  nobody but an administrator deletes an appointment), confined to the R4 Practitioner
  compartment (`confined_to_practitioner_compartment`): the appointments the doctor takes
  part in, before and after any change, and the responses and messages naming the doctor.
  Other doctors' appointments are other patients' data, so a doctor books their own
  appointments and staff book for everyone. "reads the patients they see": Patient `rs`,
  limited to patients with an appointment (any status) with the doctor
  (`reads_seen_patients_only`). Reminders are staff work, so Communication(Request) `rs`.
  Overbooking is listed under staff only, so a doctor may not overbook; a doctor may book
  an emergency slot (clinical judgement).
- staff — "schedules appointments for anyone, handles cancellations, manages the waiting
  list": Appointment and AppointmentResponse `crus` with no owner limit (the waiting list is
  appointments in `proposed`/`waitlist` state, so it needs nothing more). Registering a walk-in
  patient is front-desk work: Patient `crus`. "sends reminders": CommunicationRequest and
  Communication `crus`. "may overbook with a reason": `may_overbook` (the reason is enforced
  by the booking service). No availability management: Schedule and Slot `rs`.
- patient — "finds slots": Slot, Schedule and the directory (Practitioner, PractitionerRole,
  Location, HealthcareService, Organization, Device) `rs`. "books for self, sees own
  appointments, cancels own within policy": Appointment `crus` and AppointmentResponse `crus`,
  always confined to the patient compartment; a patient books, holds, moves and cancels but
  never sets the statuses the clinic records (arrived, checked-in, fulfilled, noshow,
  entered-in-error: `cancels_within_policy_only`). The clinic has no cancellation window
  setting yet, so "within policy" is only that. "receives
  reminders": Communication and CommunicationRequest `rs` in the compartment. Own Patient
  `rs` only: the issue gives patients no demographics editing. No emergency slots, no
  overbooking, no audit trail.

The role comes from the token: the claim `fhir_scheduler_role` (one of the role names)
when present; otherwise from the `fhirUser` claim's type (`Patient/..` → patient,
`Practitioner/..` → doctor). Staff and administrators must carry the claim: a Practitioner
reference alone cannot tell a receptionist from a doctor, so it maps to the narrower
clinical role rather than guess. Backend services (no `fhirUser`) need the claim too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from fhir_server.auth.scopes import ALL_PERMISSIONS, Permission
from fhir_server.fhir.errors import InvalidRequest

ROLE_CLAIM: Final = "fhir_scheduler_role"
ANY_TYPE: Final = "*"

# Reference data a scheduling client needs to show who and where, readable by every role.
DIRECTORY_TYPES: Final[tuple[str, ...]] = (
    "Schedule", "Slot", "Practitioner", "PractitionerRole", "Location", "HealthcareService",
    "Organization", "Device",
)


class Role(StrEnum):
    """Who the user is to the clinic, as named in the token's role claim."""

    ADMINISTRATOR = "administrator"
    DOCTOR = "doctor"
    STAFF = "staff"
    PATIENT = "patient"


class InvalidRoleClaim(InvalidRequest):
    """The token names a role this server does not know; never fall back silently."""

    default_code = "invalid"


@dataclass(frozen=True, slots=True)
class RoleDefinition:
    """The ceiling of one role: permissions per resource type plus scheduling capabilities."""

    role: Role
    permissions: Mapping[str, frozenset[Permission]]
    may_overbook: bool = False
    may_book_emergency: bool = False
    may_read_audit: bool = False
    may_manage_any_availability: bool = False
    manages_own_availability_only: bool = False
    reads_seen_patients_only: bool = False
    confined_to_practitioner_compartment: bool = False
    cancels_within_policy_only: bool = False
    confined_to_patient_compartment: bool = False

    def permissions_for(self, resource_type: str) -> frozenset[Permission]:
        """What the role may ever do on `resource_type` (an explicit entry beats `*`)."""
        found = self.permissions.get(resource_type)
        if found is None:
            found = self.permissions.get(ANY_TYPE, frozenset())
        return found

    def permits(self, resource_type: str, permission: Permission) -> bool:
        """True when the role's ceiling includes `permission` on `resource_type`."""
        return permission in self.permissions_for(resource_type)


def _perms(letters: str) -> frozenset[Permission]:
    """`"crus"` as a permission set (checked against `cruds`)."""
    chosen = frozenset(letters)
    if not chosen <= ALL_PERMISSIONS:
        raise ValueError(f"unknown permission letters in {letters!r}")
    return frozenset(p for p in ALL_PERMISSIONS if p in chosen)


def _table(entries: Mapping[str, str]) -> Mapping[str, frozenset[Permission]]:
    """A read-only type → permissions table from letter strings."""
    return MappingProxyType({kind: _perms(letters) for kind, letters in entries.items()})


_DIRECTORY_READ: Final = {kind: "rs" for kind in DIRECTORY_TYPES}

ROLES: Final[Mapping[Role, RoleDefinition]] = MappingProxyType({
    Role.ADMINISTRATOR: RoleDefinition(
        Role.ADMINISTRATOR, _table({ANY_TYPE: "cruds", "AuditEvent": "rs"}),
        may_overbook=True, may_book_emergency=True, may_read_audit=True,
        may_manage_any_availability=True),
    Role.DOCTOR: RoleDefinition(
        Role.DOCTOR, _table({
            **_DIRECTORY_READ, "Schedule": "crus", "Slot": "cruds",
            "Appointment": "crus", "AppointmentResponse": "crus", "Patient": "rs",
            "Communication": "rs", "CommunicationRequest": "rs"}),
        may_book_emergency=True, manages_own_availability_only=True,
        reads_seen_patients_only=True, confined_to_practitioner_compartment=True),
    Role.STAFF: RoleDefinition(
        Role.STAFF, _table({
            **_DIRECTORY_READ, "Appointment": "crus", "AppointmentResponse": "crus",
            "Patient": "crus", "Communication": "crus", "CommunicationRequest": "crus"}),
        may_overbook=True, may_book_emergency=True),
    Role.PATIENT: RoleDefinition(
        Role.PATIENT, _table({
            **_DIRECTORY_READ, "Appointment": "crus", "AppointmentResponse": "crus",
            "Patient": "rs", "Communication": "rs", "CommunicationRequest": "rs"}),
        cancels_within_policy_only=True, confined_to_patient_compartment=True),
})

_ROLE_BY_FHIR_USER_TYPE: Final[Mapping[str, Role]] = MappingProxyType({
    "Patient": Role.PATIENT,
    "Practitioner": Role.DOCTOR,
})


def definition_of(role: Role) -> RoleDefinition:
    """The ceiling of `role`."""
    return ROLES[role]


def role_from_claims(claims: Mapping[str, Any]) -> Role | None:
    """The role of a validated token: the role claim, else the `fhirUser` type, else None."""
    named = claims.get(ROLE_CLAIM)
    if named is not None:
        try:
            return Role(str(named).strip().lower())
        except ValueError:
            known = ", ".join(role.value for role in Role)
            raise InvalidRoleClaim(f"Unknown {ROLE_CLAIM} {named!r}; expected one of "
                                   f"{known}") from None
    fhir_user = claims.get("fhirUser")
    if not isinstance(fhir_user, str):
        return None
    return _ROLE_BY_FHIR_USER_TYPE.get(fhir_user_type(fhir_user) or "")


def fhir_user_type(fhir_user: str) -> str | None:
    """The resource type of a `fhirUser` reference, relative or absolute (`.../Patient/1`)."""
    parts = fhir_user.rstrip("/").split("/")
    if len(parts) < 2 or not parts[-1]:
        return None
    kind = parts[-2]
    return kind if kind[:1].isupper() and kind.isalpha() else None
