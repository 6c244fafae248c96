"""Type-level search: parse, resolve chains, query the store, add includes, page.

Chains are resolved here (an inner search on the target type becomes a reference clause),
so each store adapter compiles only flat typed queries. AuditEvents are searched in the
audit log (`audit_search.py`), every other type in the store's resource index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

from fhir_server.fhir.paging import page_links
from fhir_server.fhir.search.extract import extract_index
from fhir_server.fhir.search.model import Clause, ReferenceEntry, ReferenceMatch, StoreQuery
from fhir_server.fhir.search.parse import ChainedSearch, IncludeSpec, SearchRequest, parse_search
from fhir_server.services import audit_search
from fhir_server.services.context import FhirContext
from fhir_server.store.protocol import SearchPage, StoredResource

CHAIN_LIMIT = 1000
INCLUDE_LIMIT = 1000
ITERATE_DEPTH = 4  # rounds of `_include:iterate`; deeper graphs are cut off here


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One page of matches, the resources they include, and the links to move around."""

    request: SearchRequest
    matches: list[StoredResource]
    included: list[StoredResource]
    total: int | None
    links: list[tuple[str, str]]


async def search(ctx: FhirContext, resource_type: str, params: Sequence[tuple[str, str]], *,
                 now: datetime, lenient: bool = False,
                 extra: Sequence[Clause] = ()) -> SearchResult:
    """Run a FHIR search; `extra` clauses (e.g. a patient compartment) are always added."""
    request = parse_search(resource_type, params, ctx.registry, now=now, lenient=lenient,
                           base_url=ctx.base_url)
    if resource_type == audit_search.AUDIT_EVENT:
        request = audit_search.restricted(request, lenient=lenient)
    query = await _resolved_query(ctx, request, now=now, extra=extra)
    if query is None:
        return SearchResult(request, [], [], 0 if request.total != "none" else None,
                            _links(ctx, resource_type, params, request, total=0, shown=0))
    if request.summary == "count":
        query = replace(query, limit=0, offset=0, with_total=True)
    page = await _page(ctx, query)
    included = await _included(ctx, request, page.resources) if page.resources else []
    return SearchResult(request, page.resources, included, page.total,
                        _links(ctx, resource_type, params, request, total=page.total,
                               shown=len(page.resources)))


async def find_matches(ctx: FhirContext, resource_type: str, params: Sequence[tuple[str, str]],
                       *, now: datetime, limit: int) -> list[StoredResource]:
    """The first `limit` matches of a criteria string, for conditional interactions."""
    request = parse_search(resource_type, params, ctx.registry, now=now, base_url=ctx.base_url)
    query = await _resolved_query(ctx, request, now=now, extra=())
    if query is None:
        return []
    page = await _page(ctx, replace(query, offset=0, limit=limit, with_total=False))
    return page.resources


async def _page(ctx: FhirContext, query: StoreQuery) -> SearchPage:
    """One page of matches: from the audit log for AuditEvent, else from the store."""
    if query.resource_type == audit_search.AUDIT_EVENT:
        return await audit_search.page(ctx, query)
    return await ctx.store.search(query)


async def _resolved_query(ctx: FhirContext, request: SearchRequest, *, now: datetime,
                          extra: Sequence[Clause]) -> StoreQuery | None:
    """The request's query with chains turned into reference clauses; None if a chain is empty."""
    clauses = list(request.query.where) + list(extra)
    for chain in request.chains:
        clause = await _chain_clause(ctx, chain, now=now)
        if clause is None:
            return None
        clauses.append(clause)
    with_total = request.total != "none"
    return replace(request.query, where=tuple(clauses), with_total=with_total)


async def _chain_clause(ctx: FhirContext, chain: ChainedSearch, *, now: datetime) -> Clause | None:
    matches: list[ReferenceMatch] = []
    for target_type in chain.target_types:
        inner = parse_search(target_type, chain.inner, ctx.registry, now=now,
                             base_url=ctx.base_url)
        page = await _page(ctx, replace(inner.query, offset=0, limit=CHAIN_LIMIT,
                                        with_total=False))
        matches.extend(ReferenceMatch(chain.param, target_type, r.id) for r in page.resources)
    return Clause(tuple(matches)) if matches else None


async def _included(ctx: FhirContext, request: SearchRequest,
                    matches: list[StoredResource]) -> list[StoredResource]:
    """Every include applies to the matches; `:iterate` ones also to what was included since."""
    seen = {(m.resource_type, m.id) for m in matches}
    found: list[StoredResource] = []
    specs = ([(spec, _forward_include) for spec in request.includes]
             + [(spec, _reverse_include) for spec in request.revincludes])
    sources = matches
    for _ in range(ITERATE_DEPTH):
        added: list[StoredResource] = []
        for spec, include in specs:
            added.extend(await include(ctx, spec, sources, seen))
        found.extend(added)
        specs = [(spec, include) for spec, include in specs if spec.iterate]
        sources = added
        if not specs or not sources:
            break
    return found


async def _forward_include(ctx: FhirContext, spec: IncludeSpec, matches: list[StoredResource],
                           seen: set[tuple[str, str]]) -> list[StoredResource]:
    """Resources referenced by the matches through `spec.param` (`_include`)."""
    wanted: dict[str, list[str]] = {}
    for match in matches:
        if match.resource_type != spec.source_type or match.body is None:
            continue
        for entry in extract_index(orjson.loads(match.body), ctx.registry, base_url=ctx.base_url):
            if not _is_include_target(entry, spec):
                continue
            assert isinstance(entry, ReferenceEntry) and entry.target_type and entry.target_id
            key = (entry.target_type, entry.target_id)
            if key not in seen:
                seen.add(key)
                wanted.setdefault(entry.target_type, []).append(entry.target_id)
    found: list[StoredResource] = []
    for target_type, ids in wanted.items():
        found.extend(await _read_many(ctx, target_type, ids[:INCLUDE_LIMIT]))
    return found


async def _read_many(ctx: FhirContext, resource_type: str, ids: list[str]) -> list[StoredResource]:
    """Current versions by id: from the audit log for AuditEvent, else from the store."""
    if resource_type == audit_search.AUDIT_EVENT:
        return await audit_search.read_many(ctx, ids)
    return await ctx.store.read_many(resource_type, ids)


def _is_include_target(entry: object, spec: IncludeSpec) -> bool:
    return (isinstance(entry, ReferenceEntry)
            and (spec.param == "*" or entry.param == spec.param)
            and entry.target_type is not None and entry.target_id is not None
            and (spec.target_type is None or entry.target_type == spec.target_type))


async def _reverse_include(ctx: FhirContext, spec: IncludeSpec, matches: list[StoredResource],
                           seen: set[tuple[str, str]]) -> list[StoredResource]:
    """Resources of `spec.source_type` that reference the matches (`_revinclude`)."""
    targets = [m for m in matches
               if spec.target_type is None or m.resource_type == spec.target_type]
    if not targets:
        return []
    params = ([spec.param] if spec.param != "*" else
              [code for code, p in ctx.registry.for_type(spec.source_type).items()
               if p.type == "reference"])
    clause = Clause(tuple(ReferenceMatch(param, t.resource_type, t.id)
                          for param in params for t in targets))
    page = await _page(ctx, StoreQuery(spec.source_type, where=(clause,),
                                       limit=INCLUDE_LIMIT, with_total=False))
    found = [r for r in page.resources if (r.resource_type, r.id) not in seen]
    seen.update((r.resource_type, r.id) for r in found)
    return found


def _links(ctx: FhirContext, resource_type: str, params: Sequence[tuple[str, str]],
           request: SearchRequest, *, total: int | None, shown: int) -> list[tuple[str, str]]:
    """Paging links over the parameters actually used (ignored ones are left out)."""
    # Ignored filters are recorded by name, ignored `_sort`/`_include` items as `name=value`.
    kept = [(k, v) for k, v in params
            if k not in request.ignored and f"{k}={v}" not in request.ignored]
    endpoint = f"{ctx.base_url}/{resource_type}"
    if request.summary == "count":
        return page_links(endpoint, kept, count=request.count, offset=request.offset,
                          shown=0, total=0)
    return page_links(endpoint, kept, count=request.count, offset=request.offset,
                      shown=shown, total=total)
