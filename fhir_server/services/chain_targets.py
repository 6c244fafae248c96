"""A chained search's targets as one caller may see them, so a chain cannot reach further."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from fhir_server.fhir.search.model import Clause, ReferenceMatch
from fhir_server.fhir.search.parse import ChainedSearch, parse_search
from fhir_server.services.context import FhirContext
from fhir_server.services.search import CHAIN_LIMIT


async def narrowed_chain_clause(ctx: FhirContext, chain: ChainedSearch,
                                narrowing: Mapping[str, Sequence[Clause]], *,
                                now: datetime) -> Clause:
    """References through `chain.param` to the targets matching the chain's criteria AND the
    caller's clauses for their type (`narrowing`); an empty clause matches nothing."""
    matches: list[ReferenceMatch] = []
    for target_type in chain.target_types:
        inner = parse_search(target_type, chain.inner, ctx.registry, now=now,
                             base_url=ctx.base_url)
        where = inner.query.where + tuple(narrowing.get(target_type, ()))
        page = await ctx.store.search(replace(inner.query, where=where, offset=0,
                                              limit=CHAIN_LIMIT, with_total=False))
        matches.extend(ReferenceMatch(chain.param, target_type, r.id) for r in page.resources)
    return Clause(tuple(matches))
