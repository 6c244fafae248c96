"""SMART App Launch scopes: v2 `context/Type.cruds?constraints` and v1 `.read/.write/.*`.

A token's `scope` claim is parsed once into `GrantedScopes`. v1 permissions are normalised
to v2 (`read` → `rs`, `write` → `cud`, `*` → `cruds`) so the policy only ever sees v2.
Scopes that do not name resources (`openid`, `fhirUser`, `launch/patient`, ...) grant no
data access but stay visible in `GrantedScopes.other`, because the authorization server and
introspection must echo them. A malformed *resource* scope is an error, never silently
dropped: a typo must not quietly narrow (or widen) what an app can do.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final, Literal, cast
from urllib.parse import parse_qsl

from fhir_server.fhir.errors import InvalidRequest

ScopeContext = Literal["patient", "user", "system"]
Permission = Literal["c", "r", "u", "d", "s"]
Constraints = tuple[tuple[str, str], ...]

CONTEXTS: Final[tuple[ScopeContext, ...]] = ("patient", "user", "system")
PERMISSION_ORDER: Final = "cruds"
ALL_PERMISSIONS: Final[frozenset[Permission]] = frozenset(cast(tuple[Permission, ...],
                                                               tuple(PERMISSION_ORDER)))
V1_PERMISSIONS: Final[dict[str, str]] = {"read": "rs", "write": "cud", "*": "cruds"}

# Scopes SMART defines that grant no resource access by themselves.
NON_RESOURCE_SCOPES: Final[frozenset[str]] = frozenset({
    "openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
    "offline_access", "online_access",
})

_RESOURCE_SCOPE: Final = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]*)\.(?P<perms>[^?]*)"
    r"(?:\?(?P<query>.*))?")


class InvalidScope(InvalidRequest):
    """A resource scope that is not valid SMART v1 or v2 syntax."""

    default_code = "invalid"


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One resource scope, normalised to v2: who it speaks for, what type, which permissions."""

    context: ScopeContext
    resource_type: str  # a type name or "*"
    permissions: frozenset[Permission]
    constraints: Constraints = ()

    def covers(self, resource_type: str) -> bool:
        """True when this scope is about `resource_type` (directly or through `*`)."""
        return self.resource_type in ("*", resource_type)

    def grants(self, context_kinds: Collection[ScopeContext], resource_type: str,
               permission: Permission) -> bool:
        """True when this scope grants `permission` on `resource_type` in one of the contexts."""
        return (self.context in context_kinds and self.covers(resource_type)
                and permission in self.permissions)

    def to_v2(self) -> str:
        """The scope as a v2 string (`patient/Appointment.rs?status=booked`)."""
        perms = "".join(p for p in PERMISSION_ORDER if p in self.permissions)
        query = "&".join(f"{name}={value}" for name, value in self.constraints)
        return f"{self.context}/{self.resource_type}.{perms}" + (f"?{query}" if query else "")


@dataclass(frozen=True, slots=True)
class GrantedScopes:
    """Everything a token's scope claim grants: resource scopes plus the other scopes seen."""

    resource_scopes: tuple[ResourceScope, ...] = ()
    other: tuple[str, ...] = ()

    def allows(self, context_kinds: Collection[ScopeContext], resource_type: str,
               permission: Permission) -> bool:
        """True when some scope in one of `context_kinds` grants `permission` on the type."""
        return any(scope.grants(context_kinds, resource_type, permission)
                   for scope in self.resource_scopes)

    def constraints_for(self, context_kinds: Collection[ScopeContext], resource_type: str,
                        permission: Permission) -> tuple[Constraints, ...]:
        """The constraint sets (alternatives, OR-ed) that limit a granted permission.

        Empty when an unconstrained scope grants it; also empty when nothing grants it, so
        ask `allows` first. Each alternative is a set of `param=value` pairs, all of which
        must hold (SMART v2 constrained scopes).
        """
        granting = [scope for scope in self.resource_scopes
                    if scope.grants(context_kinds, resource_type, permission)]
        if not granting or any(not scope.constraints for scope in granting):
            return ()
        return tuple(dict.fromkeys(scope.constraints for scope in granting))

    def has(self, scope: str) -> bool:
        """True when a non-resource scope such as `offline_access` was granted."""
        return scope in self.other

    @property
    def contexts(self) -> frozenset[ScopeContext]:
        """The contexts (`patient`, `user`, `system`) any resource scope speaks for."""
        return frozenset(scope.context for scope in self.resource_scopes)


def parse_scopes(claim: str | Iterable[str] | None) -> GrantedScopes:
    """Parse a space-separated `scope` claim (or a list, as some IdPs send `scp`)."""
    tokens = claim.split() if isinstance(claim, str) else list(claim or ())
    resource_scopes: list[ResourceScope] = []
    other: list[str] = []
    for token in tokens:
        if not isinstance(token, str):
            raise InvalidScope(f"Scope {token!r} is not a string")
        if is_resource_scope(token):
            resource_scopes.append(parse_resource_scope(token))
        elif token and token not in other:
            other.append(token)
    return GrantedScopes(tuple(dict.fromkeys(resource_scopes)), tuple(other))


def is_resource_scope(token: str) -> bool:
    """True for `patient/...`, `user/...` and `system/...` tokens: they must parse."""
    return token.partition("/")[0] in CONTEXTS and "/" in token


def parse_resource_scope(token: str) -> ResourceScope:
    """One v1 or v2 resource scope, normalised to v2; `InvalidScope` when malformed."""
    found = _RESOURCE_SCOPE.fullmatch(token)
    if found is None:
        raise InvalidScope(f"Invalid scope {token!r}: expected "
                           "patient|user|system/<Type|*>.<cruds|read|write|*>")
    raw_permissions, query = found["perms"], found["query"]
    if raw_permissions in V1_PERMISSIONS:
        if query is not None:
            raise InvalidScope(f"Invalid scope {token!r}: SMART v1 scopes take no constraints")
        permissions = V1_PERMISSIONS[raw_permissions]
    else:
        permissions = _v2_permissions(token, raw_permissions)
    return ResourceScope(
        context=cast(ScopeContext, found["context"]),
        resource_type=found["type"],
        permissions=frozenset(cast(Permission, p) for p in permissions),
        constraints=_constraints(token, query),
    )


def _v2_permissions(token: str, raw: str) -> str:
    """Check a v2 permission string: a non-empty subsequence of `cruds`, in that order."""
    position = 0
    for letter in raw:
        found = PERMISSION_ORDER.find(letter, position)
        if found < 0:
            break
        position = found + 1
    else:
        if raw:
            return raw
    raise InvalidScope(f"Invalid scope {token!r}: permissions must be 'read', 'write', '*' "
                       f"or letters of 'cruds' in that order, got {raw!r}")


def _constraints(token: str, query: str | None) -> Constraints:
    """The `?param=value&...` pairs of a v2 scope, each with a name and a value."""
    if query is None:
        return ()
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InvalidScope(f"Invalid scope {token!r}: constraints must be param=value pairs "
                           "joined by '&'") from None
    for name, value in pairs:
        if not name or not value:
            raise InvalidScope(f"Invalid scope {token!r}: constraint {name}={value} needs "
                               "both a parameter and a value")
    return tuple(pairs)
