"""Batch and transaction Bundles posted to the base.

A transaction validates and prepares every write first, rewrites `urn:uuid:` references to
the ids it assigned, and hands all versions to one `Store.commit`, so it lands whole or not
at all. A batch runs each entry on its own and reports each outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from fhir_server.fhir.errors import (
    BusinessRuleViolation,
    Conflict,
    FhirError,
    InvalidRequest,
    ResourceGone,
    VersionConflict,
)
from fhir_server.fhir.search.parse import parse_query_string, parse_search
from fhir_server.fhir.validation import validate_resource
from fhir_server.services import resources
from fhir_server.services.context import FhirContext
from fhir_server.services.search import SearchResult, find_matches, search
from fhir_server.services.versions import new_id, next_version, tombstone
from fhir_server.store.protocol import StoredResource, VersionWrite, WriteConflict

Method = Literal["GET", "POST", "PUT", "DELETE"]
PROCESSING_ORDER: dict[str, int] = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}


@dataclass(slots=True)
class EntryRequest:
    """One parsed `Bundle.entry.request` with its resource."""

    index: int
    method: Method
    resource_type: str
    id: str | None
    version: str | None
    query: list[tuple[str, str]]
    resource: Any
    full_url: str | None
    if_match: int | None
    if_none_exist: str | None


@dataclass(slots=True)
class EntryResult:
    """What happened to one entry: a stored version, a search, nothing, or an error."""

    status: Literal["created", "updated", "deleted", "unchanged", "read", "searched", "failed"]
    stored: StoredResource | None = None
    found: SearchResult | None = None
    error: FhirError | None = None


@dataclass(slots=True)
class _Plan:
    writes: list[VersionWrite] = field(default_factory=list)
    results: dict[int, EntryResult] = field(default_factory=dict)
    write_entry: dict[int, int] = field(default_factory=dict)


def parse_bundle(bundle: Any, *, base_url: str) -> tuple[str, list[EntryRequest]]:
    """The Bundle's type (batch/transaction) and its entries, or InvalidRequest."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRequest("Expected a Bundle")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise InvalidRequest("Only batch and transaction Bundles can be posted to the base",
                             expression="Bundle.type")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidRequest("Bundle.entry must be an array", expression="Bundle.entry")
    return kind, [_parse_entry(i, e, base_url) for i, e in enumerate(entries)]


def _parse_entry(index: int, entry: Any, base_url: str) -> EntryRequest:
    where = f"Bundle.entry[{index}]"
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or request.get("method") not in PROCESSING_ORDER:
        raise InvalidRequest(f"{where}.request.method must be GET, POST, PUT or DELETE",
                             expression=f"{where}.request")
    url = str(request.get("url") or "")
    if url.startswith(base_url + "/"):
        url = url[len(base_url) + 1:]
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise InvalidRequest(f"{where}.request.url is missing", expression=f"{where}.request.url")
    version = segments[3] if len(segments) == 4 and segments[2] == "_history" else None
    if_match = request.get("ifMatch")
    return EntryRequest(
        index=index, method=request["method"], resource_type=segments[0],
        id=segments[1] if len(segments) > 1 else None, version=version,
        query=parse_query_string(parts.query), resource=entry.get("resource"),
        full_url=entry.get("fullUrl"), if_match=_etag_version(if_match, where),
        if_none_exist=request.get("ifNoneExist"))


def _etag_version(etag: Any, where: str) -> int | None:
    if etag is None:
        return None
    digits = str(etag).removeprefix("W/").strip('"')
    if not digits.isdigit():
        raise InvalidRequest(f"{where}.request.ifMatch must be an ETag like W/\"3\"")
    return int(digits)


async def run_batch(ctx: FhirContext, entries: list[EntryRequest], *,
                    now: datetime) -> list[EntryResult]:
    """Each entry on its own; one entry's failure does not affect the others."""
    results: list[EntryResult] = []
    for entry in entries:
        try:
            results.append(await _run_single(ctx, entry, now=now))
        except FhirError as error:
            results.append(EntryResult("failed", error=error))
    return results


async def _run_single(ctx: FhirContext, entry: EntryRequest, *, now: datetime) -> EntryResult:
    if entry.method == "GET":
        return await _run_read(ctx, entry, now=now)
    if entry.method == "POST":
        done = await resources.create(ctx, entry.resource_type, entry.resource, now=now,
                                      if_none_exist=entry.if_none_exist)
        return EntryResult("created" if done.created else "unchanged", done.stored)
    if entry.method == "PUT":
        done = await resources.update(ctx, entry.resource_type, _require_id(entry),
                                      entry.resource, now=now, if_match=entry.if_match)
        return EntryResult("created" if done.created else "updated", done.stored)
    deleted = await resources.delete(ctx, entry.resource_type, _require_id(entry), now=now,
                                     if_match=entry.if_match)
    return EntryResult("deleted" if deleted else "unchanged")


async def _run_read(ctx: FhirContext, entry: EntryRequest, *, now: datetime) -> EntryResult:
    if entry.id is None:
        found = await search(ctx, entry.resource_type, entry.query, now=now)
        return EntryResult("searched", found=found)
    if entry.version is not None:
        return EntryResult("read", await resources.vread(ctx, entry.resource_type, entry.id,
                                                         entry.version))
    return EntryResult("read", await resources.read(ctx, entry.resource_type, entry.id))


def _require_id(entry: EntryRequest) -> str:
    if entry.id is None:
        raise InvalidRequest(f"Bundle.entry[{entry.index}].request.url needs an id for "
                             f"{entry.method}", expression=f"Bundle.entry[{entry.index}].request.url")
    return entry.id


async def run_transaction(ctx: FhirContext, entries: list[EntryRequest], *,
                          now: datetime) -> list[EntryResult]:
    """All entries or none: prepare every write, then commit them together."""
    _refuse_duplicate_targets(entries)
    aliases = await _assign_ids(ctx, entries, now=now)
    plan = _Plan()
    for entry in sorted(entries, key=lambda e: PROCESSING_ORDER[e.method]):
        if entry.method != "GET" and entry.index not in plan.results:
            await _prepare_write(ctx, entry, aliases, plan, now=now)
    await _check_reads(ctx, entries, plan, now=now)
    try:
        stored = await ctx.store.commit(plan.writes) if plan.writes else []
    except WriteConflict as conflict:
        if any(e.if_match is not None for e in entries):
            raise VersionConflict(f"Transaction not applied: {conflict}") from conflict
        raise Conflict(f"Transaction not applied: {conflict}") from conflict
    for position, version in enumerate(stored):
        plan.results[plan.write_entry[position]].stored = version
        rules = ctx.rules.get(version.resource_type)
        if rules is not None:
            await rules.after_commit(ctx, version, now=now)
    for entry in entries:
        if entry.method == "GET":
            plan.results[entry.index] = await _run_read(ctx, entry, now=now)
    return [plan.results[e.index] for e in entries]


async def _check_reads(ctx: FhirContext, entries: list[EntryRequest], plan: _Plan, *,
                       now: datetime) -> None:
    """Fail before anything is written if a GET entry could not succeed after the commit."""
    written = {(w.resource_type, w.id): w for w in plan.writes}
    for entry in entries:
        if entry.method != "GET":
            continue
        resources.require_supported(entry.resource_type)
        if entry.id is None:
            parse_search(entry.resource_type, entry.query, ctx.registry, now=now,
                         base_url=ctx.base_url)
            continue
        write = written.get((entry.resource_type, entry.id))
        if write is None or (entry.version is not None
                             and entry.version != str(write.version_id)):
            await _run_read(ctx, entry, now=now)  # untouched here, so it reads the same now
        elif write.deleted:
            raise ResourceGone(f"Bundle.entry[{entry.index}]: {entry.resource_type}/{entry.id} "
                               f"is deleted by this transaction")


def _refuse_duplicate_targets(entries: list[EntryRequest]) -> None:
    targets = [(e.resource_type, e.id) for e in entries if e.method in ("PUT", "DELETE")]
    if len(targets) != len(set(targets)):
        raise InvalidRequest("A transaction may change each resource only once")


async def _assign_ids(ctx: FhirContext, entries: list[EntryRequest], *,
                      now: datetime) -> dict[str, str]:
    """Map each POST entry's fullUrl to `Type/id` (new, or the conditional match's)."""
    aliases: dict[str, str] = {}
    for entry in entries:
        if entry.method != "POST":
            if entry.full_url and entry.id:
                aliases[entry.full_url] = f"{entry.resource_type}/{entry.id}"
            continue
        resources.require_supported(entry.resource_type)
        if entry.if_none_exist:
            matches = await find_matches(ctx, entry.resource_type,
                                         parse_query_string(entry.if_none_exist.lstrip("?")),
                                         now=now, limit=2)
            if len(matches) > 1:
                raise VersionConflict(f"Bundle.entry[{entry.index}] ifNoneExist matches several")
            if matches:
                entry.id = matches[0].id
                entry.method = "GET"
        if entry.id is None:
            entry.id = new_id()
        if entry.full_url:
            aliases[entry.full_url] = f"{entry.resource_type}/{entry.id}"
    return aliases


async def _prepare_write(ctx: FhirContext, entry: EntryRequest, aliases: dict[str, str],
                         plan: _Plan, *, now: datetime) -> None:
    id = _require_id(entry)
    resources.require_supported(entry.resource_type)
    rules = ctx.rules.get(entry.resource_type)
    if rules is not None and not rules.transactional:
        raise BusinessRuleViolation(
            f"Bundle.entry[{entry.index}]: {entry.resource_type} changes claim or release "
            "time one step at a time and cannot join a transaction; send them in a batch or "
            "on their own", expression=f"Bundle.entry[{entry.index}]")
    current = await ctx.store.read(entry.resource_type, id)
    if entry.if_match is not None and (current is None or current.version_id != entry.if_match):
        raise VersionConflict(f"Bundle.entry[{entry.index}]: {entry.resource_type}/{id} is not "
                              f"at version {entry.if_match}")
    if entry.method == "DELETE":
        if current is None or current.deleted:
            plan.results[entry.index] = EntryResult("unchanged")
            return
        write = tombstone(current, now=now)
        status = "deleted"
    else:
        resource = _rewrite_references(entry.resource, aliases)
        _validate_entry(resource, entry)
        if entry.method == "POST":
            current = None
        write = next_version(ctx, resource, resource_type=entry.resource_type, id=id,
                             current=current, now=now, method=entry.method)
        status = "created" if current is None or current.deleted else "updated"
    plan.write_entry[len(plan.writes)] = entry.index
    plan.writes.append(write)
    plan.results[entry.index] = EntryResult(status)


def _validate_entry(resource: Any, entry: EntryRequest) -> None:
    try:
        validate_resource(resource, resource_type=entry.resource_type)
    except FhirError as error:
        located = [replace(i, diagnostics=f"Bundle.entry[{entry.index}]: {i.diagnostics}")
                   for i in error.issues]
        raise type(error)(issues=located) from error
    if entry.method == "PUT" and resource.get("id") != entry.id:
        raise InvalidRequest(f"Bundle.entry[{entry.index}].resource.id does not match the URL")


def _rewrite_references(value: Any, aliases: dict[str, str]) -> Any:
    """A copy of `value` with every `reference` that names a bundle fullUrl made local."""
    if isinstance(value, dict):
        return {k: (aliases.get(v, v) if k == "reference" and isinstance(v, str)
                    else _rewrite_references(v, aliases)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_references(v, aliases) for v in value]
    return value
