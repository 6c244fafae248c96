"""Apply an allowing `Decision`'s restrictions to the request and its results.

- Patient compartment (a patient-context token): searches get the compartment clause;
  reads, vreads and instance histories of a resource outside it answer **404**, as if it
  did not exist (a 403 would confirm that another patient's appointment is there); writes of
  a resource outside it (before or after the change) answer 403 with nothing written; type
  and system history answer 403 (they cannot be narrowed to a compartment).
- SMART v2 scope constraints (`?param=value`): added to searches as clauses (parsed by the
  search parser; alternatives OR-ed), checked on read with the same query; writes under a
  constrained grant are refused (403), since no stored query can vouch for a body not yet
  written.
- Practitioner compartment (a doctor): the same as the patient compartment, for the
  appointments, responses and messages the doctor takes part in (search clause, 404 on read,
  403 on a write before or after the change).
- Seen patients (a doctor): reading a Patient needs an Appointment with both
  (`services/care_relationships`), else 404; Patient searches and Patient `_include`s are
  narrowed to the patients of the doctor's recent appointments (this server has no `_has`).
- A patient token writes only appointments whose Patient participants are all itself, and
  never sets the statuses the clinic records (arrived, checked-in, fulfilled, noshow,
  entered-in-error): a patient books, holds, moves and cancels.
- Own schedule (doctor): a Schedule or Slot write must be of the doctor's own schedule,
  before and after the change; `$generate-slots` is judged in `api/operation_narrowing.py`.
- Overbooking: only roles with `may_overbook` may send the overbooking extension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from itertools import product
from typing import Any

import jsonpatch
import orjson
from starlette.requests import Request

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import search_params, utc_now
from fhir_server.auth.compartment import PATIENT
from fhir_server.auth.policy import Access, AccessDenied, Decision, decide
from fhir_server.fhir.errors import FhirError, ResourceNotFound
from fhir_server.fhir.search.model import Clause, IdMatch
from fhir_server.fhir.search.parse import parse_search
from fhir_server.scheduling.slot_hold import OVERBOOKING_URL, overbooking_reason
from fhir_server.scheduling.state_machine import (
    ARRIVED,
    CHECKED_IN,
    ENTERED_IN_ERROR,
    FULFILLED,
    NOSHOW,
)
from fhir_server.services import care_relationships, resources
from fhir_server.services.context import FhirContext
from fhir_server.services.schedule_owner import local_reference, owns_schedule, owns_slot
from fhir_server.services.search import search
from fhir_server.store.protocol import StoredResource

Resource = Mapping[str, Any]
READS = frozenset({"read", "vread", "history-instance"})
WRITES = frozenset({"create", "update", "patch", "delete"})
AVAILABILITY = frozenset({"Schedule", "Slot"})
INCLUDES = ("_include", "_revinclude")
CLINIC_STATUSES = frozenset({ARRIVED, CHECKED_IN, FULFILLED, NOSHOW, ENTERED_IN_ERROR})

# A doctor's seen patients, looked up before a search with includes runs (the include filter
# is synchronous): (the doctor's reference, their patients' ids).
_seen_for_includes: ContextVar[tuple[str, frozenset[str]] | None] = ContextVar(
    "seen_for_includes", default=None)


async def check_request(request: Request, interaction: str, resource_type: str,
                        access: Access, decision: Decision) -> None:
    """Refuse (403) or hide (404) what the decision's restrictions do not allow."""
    if interaction == "history-type":
        if confines(decision, resource_type) or decision.scope_constraints:
            raise AccessDenied("History of a whole type is not available to a token confined "
                               "to a compartment or by scope constraints; search instead")
    elif interaction in READS:
        if confines(decision, resource_type) or decision.constraints_on(resource_type):
            await _check_read(request, fhir_context(request), resource_type, decision)
    elif interaction in WRITES:
        await _check_write(request, fhir_context(request), interaction, resource_type, access,
                           decision)
    elif interaction == "search-type" and _reads_seen_patients_only(access):
        await _remember_seen_patients(request, fhir_context(request), access)


def needs_check(interaction: str, resource_type: str, access: Access,
                decision: Decision) -> bool:
    """Whether `check_request` has anything to judge for such a request (the guard asks once
    per caller and route, and skips the check when not)."""
    if interaction == "history-type" or interaction in WRITES:
        return True
    if interaction in READS:
        return confines(decision, resource_type) or bool(decision.constraints_on(resource_type))
    return interaction == "search-type" and _reads_seen_patients_only(access)


def confines(decision: Decision, resource_type: str) -> bool:
    """True when the decision keeps `resource_type` inside a compartment or seen patients."""
    return ((decision.compartment is not None and decision.compartment.confines(resource_type))
            or (decision.practitioner_compartment is not None
                and decision.practitioner_compartment.confines(resource_type))
            or (decision.seen_by is not None and resource_type == PATIENT))


async def search_clauses(ctx: FhirContext, decision: Decision | None,
                         resource_type: str) -> list[Clause]:
    """Clauses every search under `decision` must AND in: compartments, seen patients, scope
    constraints and the narrowed chains of this request."""
    if decision is None:
        return []
    clauses = [found for compartment in (decision.compartment, decision.practitioner_compartment)
               if compartment is not None
               and (found := compartment.search_clause(resource_type)) is not None]
    if decision.seen_by is not None and resource_type == PATIENT:
        seen = await care_relationships.seen_patients(ctx, _id_of(decision.seen_by))
        clauses.append(Clause((IdMatch(tuple(sorted(seen))),) if seen else ()))
    clauses += constraint_clauses(ctx, resource_type, decision.constraints_on(resource_type))
    clauses += decision.chain_clauses
    return clauses


def constraint_clauses(ctx: FhirContext, resource_type: str,
                       alternatives: Sequence[Sequence[tuple[str, str]]]) -> list[Clause]:
    """Scope constraints as AND-ed clauses: OR of alternatives, each an AND of `param=value`.

    The OR of ANDs is distributed into clauses (`(a∧b)∨c` = `(a∨c)∧(b∨c)`), so each store
    compiles it as an ordinary query.
    """
    per_alternative: list[tuple[Clause, ...]] = []
    for pairs in alternatives:
        request = parse_search(resource_type, list(pairs), ctx.registry, now=utc_now(),
                               base_url=ctx.base_url)
        if request.chains or not request.query.where:
            raise AccessDenied(f"The scope constraint {pairs!r} on {resource_type} cannot be "
                               "applied by this server")
        per_alternative.append(request.query.where)
    if len(per_alternative) <= 1:
        return list(per_alternative[0]) if per_alternative else []
    if any(clause.negate for group in per_alternative for clause in group):
        raise AccessDenied(f"Negated scope constraints on {resource_type} cannot be combined")
    return [Clause(tuple(p for clause in combination for p in clause.any_of))
            for combination in product(*per_alternative)]


def admits_included(access: Access, stored: StoredResource, *, ctx: FhirContext,
                    decisions: dict[str, Decision]) -> bool:
    """May the caller see this `_include`/`_revinclude` result? Same rules as a read."""
    kind = stored.resource_type
    decision = decisions.get(kind)
    if decision is None:
        decision = decisions[kind] = decide(access, interaction="read", resource_type=kind)
    if not decision.allowed or decision.constraints_on(kind):
        return False
    if decision.seen_by is not None and kind == PATIENT:
        remembered = _seen_for_includes.get()
        if remembered is None or remembered[0] != decision.seen_by or \
                stored.id not in remembered[1]:
            return False
    if not _compartments_confine(decision, kind):
        return True
    return stored.body is not None and _admits(decision, ctx, kind, orjson.loads(stored.body))


def _compartments_confine(decision: Decision, kind: str) -> bool:
    return any(compartment is not None and compartment.confines(kind)
               for compartment in (decision.compartment, decision.practitioner_compartment))


def _admits(decision: Decision, ctx: FhirContext, kind: str, resource: Resource) -> bool:
    """True when every compartment of the decision admits the resource (JSON)."""
    return all(compartment is None or compartment.admits(
        kind, resource, registry=ctx.registry, base_url=ctx.base_url)
        for compartment in (decision.compartment, decision.practitioner_compartment))


def _reads_seen_patients_only(access: Access) -> bool:
    role = access.capabilities
    return role is not None and role.reads_seen_patients_only


async def _remember_seen_patients(request: Request, ctx: FhirContext, access: Access) -> None:
    """Before a doctor's search with includes: whose Patient resources it may include."""
    if not any(name.startswith(INCLUDES) for name, _ in await search_params(request)):
        return
    seer = decide(access, interaction="read", resource_type=PATIENT).seen_by
    if seer is not None:
        _seen_for_includes.set(
            (seer, await care_relationships.seen_patients(ctx, _id_of(seer))))


def _id_of(reference: str) -> str:
    """The id in `Type/id`."""
    return reference.rsplit("/", 1)[-1]


async def _check_read(request: Request, ctx: FhirContext, resource_type: str,
                      decision: Decision) -> None:
    """A narrowed read of something outside the caller's reach is a 404."""
    constraints = decision.constraints_on(resource_type)
    id = request.path_params["id"]
    version = request.path_params.get("version_id")
    hidden = ResourceNotFound(f"{resource_type}/{id} is not known")
    if decision.seen_by is not None and resource_type == PATIENT and \
            not await care_relationships.has_seen(ctx, _id_of(decision.seen_by), id):
        raise hidden
    try:
        stored = (await resources.vread(ctx, resource_type, id, version) if version
                  else await resources.read(ctx, resource_type, id))
    except ResourceNotFound:
        return  # the endpoint answers 404 itself
    except FhirError:
        raise hidden from None  # 410 would confirm the resource existed
    if _compartments_confine(decision, resource_type) and (
            stored.body is None
            or not _admits(decision, ctx, resource_type, orjson.loads(stored.body))):
        raise hidden
    if constraints:
        extra = constraint_clauses(ctx, resource_type, constraints)
        found = await search(ctx, resource_type, [("_id", id)], now=utc_now(), extra=extra)
        if not found.matches:
            raise hidden


async def _check_write(request: Request, ctx: FhirContext, interaction: str,
                       resource_type: str, access: Access, decision: Decision) -> None:
    """Judge the resource before and after the change; nothing is written on refusal."""
    id = request.path_params.get("id")
    body = await _json_or_none(request)
    current = await current_json(ctx, resource_type, id)
    if interaction == "patch":
        after = _patched(current, body)
    elif interaction == "delete":
        after = None
    else:
        after = body if isinstance(body, dict) else None
    await check_change(ctx, access, decision, resource_type, current=current, after=after)
    if (interaction == "patch" and resource_type == "Appointment"
            and not may_overbook(access) and OVERBOOKING_URL.encode() in await request.body()):
        raise no_overbooking(access)


async def check_change(ctx: FhirContext, access: Access, decision: Decision, resource_type: str,
                       *, current: Resource | None, after: Resource | None) -> None:
    """403 unless the caller may turn `current` into `after` (both as JSON, None if absent)."""
    if decision.constraints_on(resource_type):
        raise AccessDenied(f"A scope with ?constraints on {resource_type} allows no writes here")
    for resource in (current, after):
        if resource is not None and not _admits(decision, ctx, resource_type, resource):
            raise AccessDenied(f"{resource_type} outside the compartment of "
                               f"{_compartment_owners(decision)} cannot be written by this token")
    if decision.compartment is not None and resource_type == "Appointment" and after is not None:
        others = _other_patients(after, decision.compartment.reference, ctx.base_url)
        if others:
            raise AccessDenied(f"A patient token may only book for its own patient, not for "
                               f"{', '.join(others)}")
    if resource_type == "Appointment" and after is not None:
        _check_status_change(access, current, after)
    owner = decision.own_schedule_of
    if owner is not None and resource_type in AVAILABILITY:
        owns = owns_schedule if resource_type == "Schedule" else owns_slot
        for resource in (current, after):
            if resource is not None and not await owns(ctx, owner, resource):
                raise AccessDenied(f"{owner} may only change their own schedules and slots")
    if resource_type == "Appointment" and after is not None and not may_overbook(access):
        wanted = overbooking_reason(after)
        if wanted is not None and (current is None or overbooking_reason(current) != wanted):
            raise no_overbooking(access)


def _check_status_change(access: Access, current: Resource | None, after: Resource) -> None:
    """403 when a role that only cancels within policy sets a status the clinic records."""
    role = access.capabilities
    status = after.get("status")
    if role is None or not role.cancels_within_policy_only or status not in CLINIC_STATUSES:
        return
    if current is None or current.get("status") != status:
        raise AccessDenied(f"Role {role.role.value!r} may book, move or cancel appointments; "
                           f"the clinic records {status!r}")


def _compartment_owners(decision: Decision) -> str:
    return " and ".join(compartment.reference for compartment in (
        decision.compartment, decision.practitioner_compartment) if compartment is not None)


def _other_patients(appointment: Resource, own: str, base_url: str) -> list[str]:
    """The appointment's Patient participants other than `own`."""
    references = (local_reference((p.get("actor") or {}).get("reference"), base_url)
                  for p in appointment.get("participant") or () if isinstance(p, Mapping))
    return [ref for ref in references
            if ref is not None and ref.startswith(f"{PATIENT}/") and ref != own]


async def current_json(ctx: FhirContext, resource_type: str, id: str | None) -> Resource | None:
    """The current version as JSON, None when there is none (or it was deleted)."""
    if id is None:
        return None
    try:
        stored = await resources.read(ctx, resource_type, id)
    except FhirError:
        return None
    return orjson.loads(stored.body) if stored.body else None


async def _json_or_none(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None  # the endpoint reports the malformed body


def _patched(current: Resource | None, operations: Any) -> Resource | None:
    """The resource as the patch would leave it; None if it cannot apply (the endpoint says why)."""
    if current is None or not isinstance(operations, list):
        return None
    try:
        return jsonpatch.apply_patch(dict(current), operations)  # type: ignore[no-any-return]
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError):
        return None


def may_overbook(access: Access) -> bool:
    """True when the caller's role may overbook a slot."""
    role = access.capabilities
    return role is not None and role.may_overbook


def no_overbooking(access: Access) -> AccessDenied:
    """The refusal of an overbooking request by a role that may not overbook."""
    role = access.role.value if access.role else "none"
    return AccessDenied(f"Role {role!r} may not overbook a slot")
