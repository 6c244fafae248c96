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
- Own schedule (doctor): a Schedule or Slot write must be of the doctor's own schedule,
  before and after the change; `$generate-slots` only on the doctor's schedule.
- Overbooking: only roles with `may_overbook` may send the overbooking extension.
- `seen_by` (a doctor reads only patients they see) is NOT enforced yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

import jsonpatch
import orjson
from starlette.requests import Request

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import utc_now
from fhir_server.auth.compartment import PatientCompartment
from fhir_server.auth.policy import Access, AccessDenied, Decision, decide
from fhir_server.fhir.errors import FhirError, ResourceNotFound
from fhir_server.fhir.parameters import Parameters
from fhir_server.fhir.search.model import Clause
from fhir_server.fhir.search.parse import parse_search
from fhir_server.scheduling.slot_hold import OVERBOOKING_URL, overbooking_reason
from fhir_server.services import resources
from fhir_server.services.context import FhirContext
from fhir_server.services.schedule_owner import owns_schedule, owns_slot
from fhir_server.services.search import search
from fhir_server.store.protocol import StoredResource

Resource = Mapping[str, Any]
READS = frozenset({"read", "vread", "history-instance"})
WRITES = frozenset({"create", "update", "patch", "delete"})
AVAILABILITY = frozenset({"Schedule", "Slot"})


async def check_request(request: Request, interaction: str, resource_type: str,
                        operation: str | None, access: Access, decision: Decision) -> None:
    """Refuse (403) or hide (404) what the decision's restrictions do not allow."""
    ctx = fhir_context(request)
    if interaction == "history-type":
        if confines(decision, resource_type) or decision.scope_constraints:
            raise AccessDenied("History of a whole type is not available to a token confined "
                               "to a patient or by scope constraints; search instead")
    elif interaction in READS:
        await _check_read(request, ctx, resource_type, decision)
    elif interaction in WRITES:
        await _check_write(request, ctx, interaction, resource_type, access, decision)
    elif interaction == "operation":
        await _check_operation(request, ctx, operation or "", access, decision)


def confines(decision: Decision, resource_type: str) -> bool:
    """True when the decision keeps `resource_type` inside a patient compartment."""
    return decision.compartment is not None and decision.compartment.confines(resource_type)


async def search_clauses(ctx: FhirContext, decision: Decision | None,
                         resource_type: str) -> list[Clause]:
    """Clauses every search under `decision` must AND in: compartment, scope constraints."""
    if decision is None:
        return []
    clauses: list[Clause] = []
    if decision.compartment is not None:
        found = decision.compartment.search_clause(resource_type)
        if found is not None:
            clauses.append(found)
    clauses += constraint_clauses(ctx, resource_type, decision.constraints_on(resource_type))
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
    if not confines(decision, kind):
        return True
    assert decision.compartment is not None
    return _in_compartment(decision.compartment, ctx, kind, stored)


def _in_compartment(compartment: PatientCompartment, ctx: FhirContext, kind: str,
                    stored: StoredResource) -> bool:
    if stored.body is None:
        return False
    return compartment.admits(kind, orjson.loads(stored.body), registry=ctx.registry,
                              base_url=ctx.base_url)


async def _check_read(request: Request, ctx: FhirContext, resource_type: str,
                      decision: Decision) -> None:
    """A confined or constrained read of something outside the caller's reach is a 404."""
    constraints = decision.constraints_on(resource_type)
    if not confines(decision, resource_type) and not constraints:
        return
    id = request.path_params["id"]
    version = request.path_params.get("version_id")
    hidden = ResourceNotFound(f"{resource_type}/{id} is not known")
    try:
        stored = (await resources.vread(ctx, resource_type, id, version) if version
                  else await resources.read(ctx, resource_type, id))
    except ResourceNotFound:
        return  # the endpoint answers 404 itself
    except FhirError:
        raise hidden from None  # 410 would confirm the resource existed
    if confines(decision, resource_type):
        assert decision.compartment is not None
        if not _in_compartment(decision.compartment, ctx, resource_type, stored):
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
            and not _may_overbook(access) and OVERBOOKING_URL.encode() in await request.body()):
        raise _no_overbooking(access)


async def check_change(ctx: FhirContext, access: Access, decision: Decision, resource_type: str,
                       *, current: Resource | None, after: Resource | None) -> None:
    """403 unless the caller may turn `current` into `after` (both as JSON, None if absent)."""
    if decision.constraints_on(resource_type):
        raise AccessDenied(f"A scope with ?constraints on {resource_type} allows no writes here")
    if confines(decision, resource_type):
        compartment = decision.compartment
        assert compartment is not None
        for resource in (current, after):
            if resource is not None and not compartment.admits(
                    resource_type, resource, registry=ctx.registry, base_url=ctx.base_url):
                raise AccessDenied(f"{resource_type} outside the compartment of "
                                   f"{compartment.reference} cannot be written by this token")
    owner = decision.own_schedule_of
    if owner is not None and resource_type in AVAILABILITY:
        owns = owns_schedule if resource_type == "Schedule" else owns_slot
        for resource in (current, after):
            if resource is not None and not await owns(ctx, owner, resource):
                raise AccessDenied(f"{owner} may only change their own schedules and slots")
    if resource_type == "Appointment" and after is not None and not _may_overbook(access):
        wanted = overbooking_reason(after)
        if wanted is not None and (current is None or overbooking_reason(current) != wanted):
            raise _no_overbooking(access)


async def _check_operation(request: Request, ctx: FhirContext, operation: str, access: Access,
                           decision: Decision) -> None:
    """The Appointment operations act on one appointment: judge it like a write."""
    if operation == "generate-slots" and decision.own_schedule_of is not None:
        schedule = await current_json(ctx, "Schedule", request.path_params["id"])
        if schedule is not None and not await owns_schedule(ctx, decision.own_schedule_of,
                                                             schedule):
            raise AccessDenied(f"{decision.own_schedule_of} may only generate slots for "
                               "their own schedules")
        return
    if operation not in ("hold", "book", "reschedule"):
        return
    raw = await request.body()
    if not _may_overbook(access) and OVERBOOKING_URL.encode() in raw:
        raise _no_overbooking(access)
    if not confines(decision, "Appointment"):
        return
    try:
        params = Parameters.parse(orjson.loads(raw))
        wanted = params.resource("appointment-resource", "Appointment")
        reference = (request.path_params.get("id") if operation == "reschedule" else
                     params.reference_id("appointment-reference", "Appointment",
                                         base_url=ctx.base_url))
        patient = params.resource("patient-resource", "Patient")
    except (orjson.JSONDecodeError, FhirError):
        return  # malformed: the endpoint refuses it before anything is written
    current = await current_json(ctx, "Appointment", reference)
    await check_change(ctx, access, decision, "Appointment", current=current, after=wanted)
    assert decision.compartment is not None
    if patient is not None and patient.get("id") != decision.compartment.patient_id:
        raise AccessDenied("A patient token may only book for its own patient")


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


def _may_overbook(access: Access) -> bool:
    role = access.capabilities
    return role is not None and role.may_overbook


def _no_overbooking(access: Access) -> AccessDenied:
    role = access.role.value if access.role else "none"
    return AccessDenied(f"Role {role!r} may not overbook a slot")
