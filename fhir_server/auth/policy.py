"""The access policy: may this token do this interaction on this type, and under what limits?

Effective permission = the role's ceiling (`roles.py`) ∩ the granted scopes (`scopes.py`).
Which scopes count depends on who is asking:
- `user/` and `system/` scopes act with the role's full reach (a backend service carries a
  role claim too, so `system/` is bounded by a role like everything else);
- `patient/` scopes act inside the launch patient's compartment;
- a patient-role token is always confined to its own compartment, whatever the scope
  context, and `system/` scopes give a patient nothing.

`decide` only answers from the token and the request line. What depends on stored data
comes back as restrictions the API must apply: the `PatientCompartment` (a search clause and
a per-resource check), a doctor's `PractitionerCompartment` (the same for the appointments
they take part in), SMART v2 scope constraints, the doctor's own schedules, and the
patients a doctor has seen. A denial carries the reason for the 403 OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from fhir_server.auth.compartment import (
    PATIENT,
    PRACTITIONER,
    PRACTITIONER_COMPARTMENT_PARAMS,
    PatientCompartment,
    PractitionerCompartment,
)
from fhir_server.auth.roles import (
    Role,
    RoleDefinition,
    definition_of,
    fhir_user_type,
    role_from_claims,
)
from fhir_server.auth.scopes import (
    Constraints,
    GrantedScopes,
    Permission,
    ScopeContext,
    parse_scopes,
)
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.search.model import Clause

# FHIR RESTful interactions → the SMART v2 permission each needs.
INTERACTION_PERMISSIONS: Final[Mapping[str, Permission]] = MappingProxyType({
    "read": "r", "vread": "r", "history-instance": "r",
    "search": "s", "search-type": "s", "history-type": "s",
    "create": "c", "update": "u", "patch": "u", "delete": "d",
})
PERMISSION_NAMES: Final[Mapping[Permission, str]] = MappingProxyType({
    "c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"})
AVAILABILITY_TYPES: Final[frozenset[str]] = frozenset({"Schedule", "Slot"})


class AccessDenied(FhirError):
    """The token is valid but does not allow the request (403)."""

    default_code = "forbidden"


@dataclass(frozen=True, slots=True)
class Need:
    """One requirement of a request: any one of these (type, permission) pairs suffices."""

    any_of: tuple[tuple[str, Permission], ...]

    def describe(self) -> str:
        """`create or update Appointment`, for a denial reason."""
        return " or ".join(f"{PERMISSION_NAMES[p]} {kind}" for kind, p in self.any_of)


def _needs(*groups: tuple[tuple[str, Permission], ...]) -> tuple[Need, ...]:
    """Needs from groups of alternatives."""
    return tuple(Need(group) for group in groups)


# What each operation uses, so it needs exactly that. `$reschedule` moves an existing
# appointment (an update, never a new one); `$generate-slots` creates, updates and removes
# the schedule's free slots, so it needs all three on Slot, not create alone.
OPERATION_NEEDS: Final[Mapping[str, tuple[Need, ...]]] = MappingProxyType({
    "find-slots": _needs((("Slot", "s"),), (("Schedule", "s"),)),
    "find": _needs((("Slot", "s"),), (("Schedule", "s"),)),
    "hold": _needs((("Appointment", "c"), ("Appointment", "u"))),
    "book": _needs((("Appointment", "c"), ("Appointment", "u"))),
    "reschedule": _needs((("Appointment", "u"),)),
    "generate-slots": _needs((("Slot", "c"),), (("Slot", "u"),), (("Slot", "d"),),
                             (("Schedule", "u"),)),
})


@dataclass(frozen=True, slots=True)
class Access:
    """Who is calling, from a validated token: role, scopes, user, launch patient, client."""

    role: Role | None
    scopes: GrantedScopes
    fhir_user: str | None = None
    patient_id: str | None = None
    client_id: str | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Access:
        """Build from validated JWT claims (`scope` or `scp`, `fhirUser`, `patient`, ...)."""
        scope_claim = claims.get("scope", claims.get("scp"))
        fhir_user, patient = claims.get("fhirUser"), claims.get("patient")
        client = claims.get("client_id", claims.get("azp"))
        return cls(role=role_from_claims(claims), scopes=parse_scopes(scope_claim),
                   fhir_user=fhir_user if isinstance(fhir_user, str) else None,
                   patient_id=patient if isinstance(patient, str) and patient else None,
                   client_id=client if isinstance(client, str) else None)

    @property
    def capabilities(self) -> RoleDefinition | None:
        """The role's ceiling and flags (overbooking, emergency slots, audit), if any role."""
        return definition_of(self.role) if self.role is not None else None


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed (with restrictions for the API to apply), or refused with the reason."""

    allowed: bool
    reason: str = ""
    compartment: PatientCompartment | None = None
    practitioner_compartment: PractitionerCompartment | None = None
    scope_constraints: tuple[tuple[str, tuple[Constraints, ...]], ...] = ()
    own_schedule_of: str | None = None
    seen_by: str | None = None
    # Set per request by the API: a search's chains, narrowed to what the caller may search.
    chain_clauses: tuple[Clause, ...] = ()

    def constraints_on(self, resource_type: str) -> tuple[Constraints, ...]:
        """SMART v2 constraint alternatives on `resource_type` (empty: unconstrained)."""
        return next((found for kind, found in self.scope_constraints if kind == resource_type),
                    ())

    def require(self) -> Decision:
        """This decision if allowed; otherwise raise `AccessDenied` with the reason."""
        if not self.allowed:
            raise AccessDenied(self.reason)
        return self


def deny(reason: str) -> Decision:
    """A refusal, with what the 403 OperationOutcome will say."""
    return Decision(allowed=False, reason=reason)


@dataclass(frozen=True, slots=True)
class _Grant:
    """How one (type, permission) was granted: inside the compartment or not, constrained."""

    resource_type: str
    permission: Permission
    confined: bool
    constraints: tuple[Constraints, ...]


def decide(access: Access, *, interaction: str, resource_type: str,
           operation: str | None = None) -> Decision:
    """Whether `access` may perform the interaction (or operation) on `resource_type`."""
    if access.role is None:
        return deny("The token carries no role (fhir_scheduler_role claim or a Patient or "
                    "Practitioner fhirUser)")
    needs = _needs_of(interaction, resource_type, operation)
    if isinstance(needs, str):
        return deny(needs)
    definition = definition_of(access.role)
    patient_id = _compartment_patient(access, definition)
    if isinstance(patient_id, Decision):
        return patient_id
    grants: list[_Grant] = []
    for need in needs:
        found = _grant_for(access, definition, need, patient_id)
        if isinstance(found, str):
            return deny(found)
        grants.append(found)
    return _allowed(access, definition, grants, patient_id)


def _needs_of(interaction: str, resource_type: str,
              operation: str | None) -> tuple[Need, ...] | str:
    """The needs of a request, or why it cannot be judged (unknown names fail closed)."""
    if interaction == "operation":
        name = (operation or "").removeprefix("$")
        found = OPERATION_NEEDS.get(name)
        return found if found is not None else f"Unknown operation {operation!r}: not allowed"
    permission = INTERACTION_PERMISSIONS.get(interaction)
    if permission is None:
        return f"Unknown interaction {interaction!r}: not allowed"
    return (Need(((resource_type, permission),)),)


def _compartment_patient(access: Access, definition: RoleDefinition) -> str | None | Decision:
    """The patient whose compartment confines patient-level grants, or a refusal."""
    if not definition.confined_to_patient_compartment:
        return access.patient_id
    own = _patient_of(access.fhir_user)
    if own is not None and access.patient_id not in (None, own):
        return deny(f"A patient user ({access.fhir_user}) cannot act in the context of "
                    f"Patient/{access.patient_id}")
    found = access.patient_id or own
    if found is None:
        return deny("A patient token needs a patient context or a Patient fhirUser")
    return found


def _patient_of(fhir_user: str | None) -> str | None:
    """The id of a `Patient/<id>` fhirUser, else None."""
    return _id_of(fhir_user, PATIENT)


def _id_of(fhir_user: str | None, resource_type: str) -> str | None:
    """The id of a `<resource_type>/<id>` fhirUser, else None."""
    if fhir_user is None or fhir_user_type(fhir_user) != resource_type:
        return None
    return fhir_user.rstrip("/").rsplit("/", 1)[-1]


def _grant_for(access: Access, definition: RoleDefinition, need: Need,
               patient_id: str | None) -> _Grant | str:
    """The first alternative of `need` the role and scopes allow, or why none is."""
    reasons: list[str] = []
    for resource_type, permission in need.any_of:
        found = _grant_one(access, definition, resource_type, permission, patient_id)
        if isinstance(found, _Grant):
            return found
        reasons.append(found)
    return f"Not allowed to {need.describe()}: " + "; ".join(dict.fromkeys(reasons))


def _grant_one(access: Access, definition: RoleDefinition, resource_type: str,
               permission: Permission, patient_id: str | None) -> _Grant | str:
    """Role ceiling ∩ scopes for one pair: unconfined contexts first, then the patient's."""
    if not definition.permits(resource_type, permission):
        return (f"role {definition.role.value!r} may never {PERMISSION_NAMES[permission]} "
                f"{resource_type}")
    open_contexts: tuple[ScopeContext, ...] = (
        () if definition.confined_to_patient_compartment else ("user", "system"))
    confined_contexts: tuple[ScopeContext, ...] = (
        ("patient", "user") if definition.confined_to_patient_compartment else ("patient",))
    for contexts, confined in ((open_contexts, False), (confined_contexts, True)):
        if access.scopes.allows(contexts, resource_type, permission):
            if confined and patient_id is None:
                return f"a patient/ scope on {resource_type} needs a patient in context"
            return _Grant(resource_type, permission, confined,
                          access.scopes.constraints_for(contexts, resource_type, permission))
    return (f"no granted scope allows it (e.g. user/{resource_type}.{permission} or "
            f"patient/{resource_type}.{permission})")


def _allowed(access: Access, definition: RoleDefinition, grants: list[_Grant],
             patient_id: str | None) -> Decision:
    """An allowing decision with the restrictions the grants and the role imply."""
    confined = any(grant.confined for grant in grants)
    writes_availability = any(grant.resource_type in AVAILABILITY_TYPES
                              and grant.permission in ("c", "u", "d") for grant in grants)
    reads_patients = any(grant.resource_type == PATIENT and grant.permission in ("r", "s")
                         and not grant.confined for grant in grants)
    needs_owner = definition.manages_own_availability_only and writes_availability
    needs_seen = definition.reads_seen_patients_only and reads_patients
    if (needs_owner or needs_seen) and not access.fhir_user:
        return deny(f"A {definition.role.value} must be identified by fhirUser for this request")
    seer = _id_of(access.fhir_user, PRACTITIONER) if needs_seen else None
    if needs_seen and seer is None:
        return deny(f"A {definition.role.value} reads patients only as a Practitioner fhirUser")
    practitioner = _practitioner_compartment(access, definition, grants)
    if isinstance(practitioner, Decision):
        return practitioner
    constraints = tuple((grant.resource_type, grant.constraints) for grant in grants
                        if grant.constraints)
    return Decision(
        allowed=True,
        compartment=PatientCompartment(patient_id) if confined and patient_id else None,
        practitioner_compartment=practitioner,
        scope_constraints=constraints,
        own_schedule_of=access.fhir_user if needs_owner else None,
        seen_by=f"{PRACTITIONER}/{seer}" if seer is not None else None)


def _practitioner_compartment(access: Access, definition: RoleDefinition,
                              grants: list[_Grant]) -> PractitionerCompartment | None | Decision:
    """A doctor's compartment when a grant touches its types; a refusal without a Practitioner."""
    if not definition.confined_to_practitioner_compartment:
        return None
    kinds = {grant.resource_type for grant in grants}
    if kinds.isdisjoint(PRACTITIONER_COMPARTMENT_PARAMS):
        return None
    practitioner_id = _id_of(access.fhir_user, PRACTITIONER)
    if practitioner_id is None:
        return deny(f"A {definition.role.value} must be identified by a Practitioner fhirUser "
                    f"to use {', '.join(sorted(kinds))}")
    return PractitionerCompartment(practitioner_id)
