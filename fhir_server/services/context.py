"""What every use case needs: the store, the search parameters, the base URL and type rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from fhir_server.fhir.search.parameters import SearchParameterRegistry
from fhir_server.store.protocol import Store, StoredResource


@dataclass(frozen=True, slots=True)
class ResourceChange:
    """One REST write about to happen: the validated new body (None for a delete) and what
    it replaces. `expected_version` is the version the change was prepared against."""

    resource_type: str
    id: str
    resource: dict[str, Any] | None
    current: StoredResource | None
    method: Literal["POST", "PUT", "PATCH", "DELETE"]
    now: datetime


class TypeRules(Protocol):
    """Domain rules that own the writes of one resource type (e.g. booking for Appointment).

    `write` replaces the plain version-checked commit for REST create/update/patch/delete;
    it must raise `WriteConflict` when `change.current` is no longer current (the caller
    retries or reports 412). `after_commit` runs after a transaction Bundle committed a plain
    version of this type; types that cannot be written as plain versions set
    `transactional = False` and are refused inside transactions.
    """

    transactional: bool

    async def write(self, ctx: FhirContext, change: ResourceChange) -> StoredResource: ...

    async def after_commit(self, ctx: FhirContext, stored: StoredResource, *,
                           now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class CallerRights:
    """Scheduling overrides the caller's role allows (the API sets them per request)."""

    may_use_emergency: bool = False
    may_overbook: bool = False


@dataclass(frozen=True, slots=True)
class FhirContext:
    """Collaborators passed to services, built once at start-up (`caller` per request)."""

    store: Store
    registry: SearchParameterRegistry
    base_url: str
    rules: Mapping[str, TypeRules] = field(default_factory=dict)
    caller: CallerRights = CallerRights()
