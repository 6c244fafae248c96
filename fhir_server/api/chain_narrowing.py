"""Chained searches under a narrowed token: the chain's target obeys the caller's rules too.

`Appointment?patient.name=Garcia` is resolved by the search service as an inner search of
Patient. The base type is narrowed as always (`narrowing.search_clauses`); here the inner
search is held to what the caller may search of its type. A target type the caller may not
search refuses the request (403); a narrowed target (a compartment, scope constraints, a
doctor's seen patients) adds a clause listing only the targets the caller may see, ANDed with
the service's own chain clause, so a chain neither leaks other patients nor widens a search.
Only requests with a chain pay for this (one more inner search per narrowed chain).
"""

from __future__ import annotations

import dataclasses

from starlette.requests import Request

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.narrowing import search_clauses
from fhir_server.api.request_parsing import is_lenient, search_params, utc_now
from fhir_server.auth.policy import Access, AccessDenied, Decision, decide
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.search.model import Clause
from fhir_server.fhir.search.parse import parse_search
from fhir_server.services.chain_targets import narrowed_chain_clause


async def with_narrowed_chains(request: Request, access: Access, decision: Decision,
                               resource_type: str) -> Decision:
    """The search's decision carrying a clause per chain whose target the caller sees only in
    part; 403 when a chain reaches a type the caller may not search."""
    params = await search_params(request)
    if not any("." in name for name, _ in params):
        return decision
    ctx, now = fhir_context(request), utc_now()
    try:
        parsed = parse_search(resource_type, params, ctx.registry, now=now,
                              lenient=is_lenient(request), base_url=ctx.base_url)
    except FhirError:
        return decision  # the endpoint refuses the same search with the reason
    clauses: list[Clause] = []
    for chain in parsed.chains:
        narrowing: dict[str, list[Clause]] = {}
        for target in chain.target_types:
            allowed = decide(access, interaction="search-type", resource_type=target)
            if not allowed.allowed:
                raise AccessDenied(f"The chained parameter {chain.param} searches {target}: "
                                   f"{allowed.reason}. Name the targets you may search with a "
                                   f"type modifier, e.g. {chain.param}:Practitioner")
            narrowing[target] = await search_clauses(ctx, allowed, target)
        if any(narrowing.values()):
            clauses.append(await narrowed_chain_clause(ctx, chain, narrowing, now=now))
    if not clauses:
        return decision
    return dataclasses.replace(decision, chain_clauses=decision.chain_clauses + tuple(clauses))
