"""Which scopes a user-facing authorization grants: requested ∩ registered ∩ the user's role.

- A requested resource scope is within the client's registration when one registered scope
  of the same context covers its type (or `*`), all its permissions and all its constraints
  (`patient/*.cruds` covers `patient/Appointment.rs`); other scopes must be registered as is.
- `system/` scopes belong to backend services and are never granted to a user's app.
- A resource scope naming a type is narrowed to the permissions the role may ever use there
  (a patient asking `patient/Patient.cruds` gets `patient/Patient.rs`); `*` scopes stay as they
  are, because the policy applies the role's ceiling per type at request time anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fhir_server.auth.roles import RoleDefinition
from fhir_server.auth.scopes import (
    ResourceScope,
    is_resource_scope,
    parse_resource_scope,
)


def within_registration(requested: Iterable[str], registered: Sequence[str]) -> tuple[str, ...]:
    """The requested scopes the client's registration allows, in request order, each once.

    Raises `InvalidScope` when a requested resource scope is malformed.
    """
    registered_resources = [parse_resource_scope(s) for s in registered if is_resource_scope(s)]
    allowed: list[str] = []
    for scope in dict.fromkeys(requested):
        if is_resource_scope(scope):
            wanted = parse_resource_scope(scope)
            if wanted.context != "system" and any(_covers(held, wanted)
                                                 for held in registered_resources):
                allowed.append(scope)
        elif scope in registered:
            allowed.append(scope)
    return tuple(allowed)


def narrowed_to_role(scopes: Iterable[str], role: RoleDefinition) -> tuple[str, ...]:
    """The scopes with each typed resource scope cut down to what `role` may ever do."""
    narrowed: list[str] = []
    for scope in scopes:
        if not is_resource_scope(scope):
            narrowed.append(scope)
            continue
        parsed = parse_resource_scope(scope)
        if parsed.resource_type == "*":
            narrowed.append(scope)
            continue
        permitted = parsed.permissions & role.permissions_for(parsed.resource_type)
        if permitted == parsed.permissions:
            narrowed.append(scope)
        elif permitted:
            narrowed.append(ResourceScope(parsed.context, parsed.resource_type, permitted,
                                          parsed.constraints).to_v2())
    return tuple(dict.fromkeys(narrowed))


def _covers(held: ResourceScope, wanted: ResourceScope) -> bool:
    """True when the registered scope `held` allows everything `wanted` asks for."""
    return (held.context == wanted.context and held.resource_type in ("*", wanted.resource_type)
            and wanted.permissions <= held.permissions
            and set(held.constraints) <= set(wanted.constraints))

