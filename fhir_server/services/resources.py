"""The FHIR instance interactions: create, read, vread, update, patch and delete.

Every write is validated first and then appended as one version-checked store commit, so
a failed request writes nothing and two concurrent writers cannot both win.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import jsonpatch
import orjson

from fhir_server.fhir.errors import (
    Conflict,
    InvalidRequest,
    MultipleMatches,
    NotAllowed,
    ResourceGone,
    ResourceNotFound,
    UnsupportedResourceType,
    VersionConflict,
)
from fhir_server.fhir.resource_types import is_supported
from fhir_server.fhir.search.parse import parse_query_string
from fhir_server.fhir.validation import validate_resource
from fhir_server.services import audit_search
from fhir_server.services.context import FhirContext, ResourceChange
from fhir_server.services.search import find_matches
from fhir_server.services.versions import new_id, next_version, tombstone
from fhir_server.store.protocol import StoredResource, WriteConflict

UNCONDITIONAL_RETRIES = 5
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The version a write produced, and whether it brought the resource (back) into being."""

    stored: StoredResource
    created: bool


def require_supported(resource_type: str) -> None:
    """Refuse types the server has no endpoint for (404)."""
    if not is_supported(resource_type):
        raise UnsupportedResourceType(f"Resource type '{resource_type}' is not supported")


async def read(ctx: FhirContext, resource_type: str, id: str) -> StoredResource:
    """The current version; 404 if it never existed, 410 if it was deleted. AuditEvents come
    from the audit log, so every reader (REST, Bundles, narrowing) sees the same one."""
    require_supported(resource_type)
    if resource_type == audit_search.AUDIT_EVENT:
        return await audit_search.read(ctx, id)
    stored = await ctx.store.read(resource_type, id)
    if stored is None:
        raise ResourceNotFound(f"{resource_type}/{id} is not known")
    if stored.deleted:
        raise ResourceGone(f"{resource_type}/{id} was deleted")
    return stored


async def vread(ctx: FhirContext, resource_type: str, id: str, version_id: str) -> StoredResource:
    """One version; 404 if it does not exist, 410 if that version is a deletion."""
    require_supported(resource_type)
    if not version_id.isdigit():
        raise ResourceNotFound(f"{resource_type}/{id} has no version '{version_id}'")
    if resource_type == audit_search.AUDIT_EVENT:  # as in REST: one immutable entry each
        raise NotAllowed("AuditEvent does not support vread", code="not-supported")
    stored = await ctx.store.read_version(resource_type, id, int(version_id))
    if stored is None:
        raise ResourceNotFound(f"{resource_type}/{id} has no version {version_id}")
    if stored.deleted:
        raise ResourceGone(f"{resource_type}/{id} version {version_id} is a deletion")
    return stored


async def create(ctx: FhirContext, resource_type: str, resource: Any, *, now: datetime,
                 if_none_exist: str | None = None) -> WriteResult:
    """Create with a server id; with `If-None-Exist`, return the single existing match instead."""
    require_supported(resource_type)
    validate_resource(resource, resource_type=resource_type)
    if if_none_exist:
        existing = await _single_match(ctx, resource_type, if_none_exist, now=now)
        if existing is not None:
            return WriteResult(existing, created=False)
    change = ResourceChange(resource_type, new_id(), resource, None, "POST", now)
    return WriteResult(await commit_change(ctx, change), created=True)


async def update(ctx: FhirContext, resource_type: str, id: str, resource: Any, *,
                 now: datetime, if_match: int | None = None) -> WriteResult:
    """Replace (or create with a client id); with `If-Match`, only over that version."""
    require_supported(resource_type)
    validate_resource(resource, resource_type=resource_type)
    body_id = resource.get("id")
    if body_id is None:
        raise InvalidRequest("The resource must carry its id on update", expression=f"{resource_type}.id")
    if body_id != id:
        raise InvalidRequest(f"Resource id '{body_id}' does not match the URL id '{id}'",
                             expression=f"{resource_type}.id")

    async def attempt() -> WriteResult:
        current = await ctx.store.read(resource_type, id)
        _check_if_match(current, if_match, resource_type, id)
        change = ResourceChange(resource_type, id, dict(resource), current, "PUT", now)
        return WriteResult(await commit_change(ctx, change),
                           created=current is None or current.deleted)

    return await _with_retries(attempt, conditional=if_match is not None)


async def patch(ctx: FhirContext, resource_type: str, id: str, operations: Any, *,
                now: datetime, if_match: int | None = None) -> WriteResult:
    """Apply a JSON Patch to the current version and store the validated result."""
    require_supported(resource_type)
    if not isinstance(operations, list):
        raise InvalidRequest("A JSON Patch document must be an array of operations")

    async def attempt() -> WriteResult:
        current = await read(ctx, resource_type, id)
        _check_if_match(current, if_match, resource_type, id)
        patched = _apply_patch(orjson.loads(current.body or b"{}"), operations)
        if patched.get("resourceType") != resource_type or patched.get("id") != id:
            raise InvalidRequest("A patch may not change the resource's type or id")
        validate_resource(patched, resource_type=resource_type)
        change = ResourceChange(resource_type, id, patched, current, "PATCH", now)
        return WriteResult(await commit_change(ctx, change), created=False)

    return await _with_retries(attempt, conditional=if_match is not None)


async def delete(ctx: FhirContext, resource_type: str, id: str, *, now: datetime,
                 if_match: int | None = None) -> bool:
    """Record a deletion; False when there was nothing to delete (still a success in FHIR)."""
    require_supported(resource_type)

    async def attempt() -> bool:
        current = await ctx.store.read(resource_type, id)
        _check_if_match(current, if_match, resource_type, id)
        if current is None or current.deleted:
            return False
        await commit_change(ctx, ResourceChange(resource_type, id, None, current, "DELETE", now))
        return True

    return await _with_retries(attempt, conditional=if_match is not None)


def _apply_patch(document: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    try:
        result = jsonpatch.JsonPatch(operations).apply(document)
    except jsonpatch.JsonPatchTestFailed as error:
        raise VersionConflict(f"JSON Patch test failed: {error}") from error
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError,
            KeyError, IndexError, ValueError) as error:
        raise InvalidRequest(f"Invalid JSON Patch: {error}") from error
    if not isinstance(result, dict):
        raise InvalidRequest("A patch must leave a resource object")
    return result


def _check_if_match(current: StoredResource | None, if_match: int | None,
                    resource_type: str, id: str) -> None:
    if if_match is None:
        return
    actual = current.version_id if current is not None else None
    if actual != if_match:
        raise VersionConflict(
            f"{resource_type}/{id} is at version {actual}, not {if_match} (If-Match)")


async def commit_change(ctx: FhirContext, change: ResourceChange) -> StoredResource:
    """Hand the change to its type's rules, or append it as a plain version-checked write."""
    rules = ctx.rules.get(change.resource_type)
    if rules is not None:
        return await rules.write(ctx, change)
    return await commit_plain(ctx, change)


async def commit_plain(ctx: FhirContext, change: ResourceChange) -> StoredResource:
    """Append the change as the next version, if `change.current` is still current."""
    if change.resource is None:
        assert change.current is not None
        write = tombstone(change.current, now=change.now)
    else:
        write = next_version(ctx, change.resource, resource_type=change.resource_type,
                             id=change.id, current=change.current, now=change.now,
                             method=change.method)
    stored = await ctx.store.commit([write])
    return stored[0]


async def _with_retries(attempt: Callable[[], Awaitable[T]], *, conditional: bool) -> T:
    """Retry an unconditional write that lost a race; a conditional one reports 412 at once."""
    for _ in range(UNCONDITIONAL_RETRIES):
        try:
            return await attempt()
        except WriteConflict as conflict:
            if conditional:
                raise VersionConflict(str(conflict)) from conflict
    raise Conflict("The resource is being changed concurrently; try again")


async def _single_match(ctx: FhirContext, resource_type: str, criteria: str, *,
                        now: datetime) -> StoredResource | None:
    matches = await find_matches(ctx, resource_type, parse_query_string(criteria.lstrip("?")),
                                 now=now, limit=2)
    if len(matches) > 1:
        raise MultipleMatches(f"If-None-Exist criteria '{criteria}' match several resources")
    return matches[0] if matches else None
