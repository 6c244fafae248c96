"""AuditEvent read and search, served from the append-only audit log rather than the resources.

The search layer parses an AuditEvent search like any other; this module maps its typed query
onto the log's few fields (`store/protocol.py` `AuditLog`), refuses the parameters the log
cannot answer, and renders each logged row as its BALP AuditEvent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import orjson

from fhir_server.audit.events import AUDIT_EVENT_TYPE, RESTFUL_INTERACTION
from fhir_server.audit.log_entries import audit_event
from fhir_server.fhir.errors import ResourceNotFound, UnknownSearchParameter
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.resource_types import is_searchable
from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    IdMatch,
    Predicate,
    ReferenceMatch,
    StoreQuery,
    StringMatch,
    TokenMatch,
)
from fhir_server.fhir.search.parse import SearchRequest
from fhir_server.services.context import FhirContext
from fhir_server.store.protocol import LoggedAudit, SearchPage, StoredResource

AUDIT_EVENT: Final = "AuditEvent"
# The systems each token field's codes match under (`action` and `outcome` are plain codes).
_TOKEN_SYSTEMS: Final = {
    "subtype": (None, RESTFUL_INTERACTION),
    "action": (None, "", "http://hl7.org/fhir/audit-event-action"),
    "outcome": (None, "", "http://hl7.org/fhir/audit-event-outcome"),
}
_CONSTANTS: Final = {"type": (AUDIT_EVENT_TYPE, "rest")}  # the same in every event
_SORTABLE: Final = frozenset({"date", "lastUpdated", "id"})
PATIENT: Final = "Patient"


async def read(ctx: FhirContext, id: str) -> StoredResource:
    """One AuditEvent; 404 if the log has no such id."""
    logged = await ctx.store.audit_log.read(id)
    if logged is None:
        raise ResourceNotFound(f"AuditEvent/{id} is not known")
    return _rendered(ctx, logged)


async def read_many(ctx: FhirContext, ids: Sequence[str]) -> list[StoredResource]:
    """The AuditEvents of `ids` the log holds (unknown ids are left out), for `_include`."""
    if not ids:
        return []
    query = StoreQuery(AUDIT_EVENT, where=(Clause((IdMatch(tuple(ids)),)),), limit=len(ids),
                       with_total=False)
    return (await page(ctx, query)).resources


async def page(ctx: FhirContext, query: StoreQuery) -> SearchPage:
    """The page of AuditEvents a parsed search (or include) asks for."""
    for key in query.sort:
        if key.kind not in _SORTABLE:
            raise UnknownSearchParameter(f"AuditEvent cannot be sorted by {key.param!r}",
                                         expression="_sort")
    clauses = [_log_clause(clause) for clause in query.where]
    log_query = replace(query, where=tuple(c for c in clauses if c is not None))
    found = await ctx.store.audit_log.search(log_query)
    return SearchPage([_rendered(ctx, logged) for logged in found.entries], found.total)


def restricted(request: SearchRequest, *, lenient: bool) -> SearchRequest:
    """Under `handling=lenient`, the request without what the log cannot search (reported as
    ignored, like unknown parameters); otherwise unchanged, and `page` refuses it."""
    if not lenient:
        return request
    ignored = list(request.ignored)
    where = []
    for clause in request.query.where:
        unsupported = [_param(p) for p in clause.any_of if not is_searchable(AUDIT_EVENT,
                                                                             _param(p))]
        ignored.extend(unsupported)
        if not unsupported:
            where.append(clause)
    sort = [key for key in request.query.sort if key.kind in _SORTABLE]
    ignored.extend(f"_sort={key.param}" for key in request.query.sort if key not in sort)
    chains = [chain for chain in request.chains if is_searchable(AUDIT_EVENT, chain.param)]
    ignored.extend(chain.param for chain in request.chains if chain not in chains)
    query = replace(request.query, where=tuple(where), sort=tuple(sort))
    return replace(request, query=query, chains=tuple(chains),
                   ignored=tuple(dict.fromkeys(ignored)))


def _rendered(ctx: FhirContext, logged: LoggedAudit) -> StoredResource:
    """A logged row as the one (immutable) version of its AuditEvent."""
    event = audit_event(logged, server=ctx.base_url)
    return StoredResource(resource_type=AUDIT_EVENT, id=logged.id, version_id=1,
                          last_updated=parse_instant(event["meta"]["lastUpdated"]),
                          deleted=False, method="POST", body=orjson.dumps(event))


def _log_clause(clause: Clause) -> Clause | None:
    """The clause over the log's fields; None when it holds for every event, an empty
    clause when for none."""
    never = Clause(())
    predicates: list[Predicate] = []
    for predicate in clause.any_of:
        mapped = _log_predicates(predicate)
        if mapped is True:
            return never if clause.negate else None
        if mapped is not False:
            predicates.extend(mapped)
    if not predicates:
        return None if clause.negate else never
    return Clause(tuple(predicates), negate=clause.negate)


def _log_predicates(predicate: Predicate) -> tuple[Predicate, ...] | bool:
    """The predicate on log fields (alternatives), or whether it holds for every event (True)
    or none."""
    param = _param(predicate)
    if isinstance(predicate, IdMatch):
        return (predicate,)
    if isinstance(predicate, TokenMatch) and param in _CONSTANTS:
        system, code = _CONSTANTS[param]
        return predicate.system in (None, system) and predicate.code in (None, code)
    if isinstance(predicate, TokenMatch) and param in _TOKEN_SYSTEMS:
        if predicate.system not in _TOKEN_SYSTEMS[param]:
            return False
        return True if predicate.code is None else (TokenMatch(param, None, predicate.code),)
    if isinstance(predicate, DateMatch) and param in ("date", "_lastUpdated"):
        return (replace(predicate, param="date"),)
    if isinstance(predicate, ReferenceMatch) and param in ("entity", "patient", "agent"):
        if predicate.target_id is None:
            return False  # the log keeps no absolute URLs
        if param == "entity" and predicate.target_type in (None, PATIENT):
            # A patient entity is logged once, as `patient` (audit/log_entries.py).
            return (predicate, ReferenceMatch("patient", PATIENT, predicate.target_id))
        return (predicate,)
    if isinstance(predicate, StringMatch) and param == "agent-name":
        return (predicate,)
    raise UnknownSearchParameter(f"AuditEvent search by {param!r} is not supported",
                                 expression=param)


def _param(predicate: Predicate) -> str:
    return "_id" if isinstance(predicate, IdMatch) else predicate.param

