"""Find bookable times (`$find-slots`, ITI-115 `$find`): load in a few indexed queries, then find.

Queries, whatever the number of actors or days: the Schedules of the requested actors (one
query with every reference in one OR clause, plus one by id for `schedule`), their FREE Slots
in the window (one, `free_slots_query`), and the active Appointments of all those actors and
the patient overlapping the window (one, `busy_query`). ITI-115's `organization` costs one
PractitionerRole query and `location-string` one Location query. Reading the JSON is
`scheduling/slot_records.py`, building the options `scheduling/actor_options.py`, and finding
`scheduling/finding.py`, all pure and on epoch minutes.

Rules worth knowing:
- A Schedule or Slot without serviceType/specialty (or Slot.appointmentType) serves any; one
  with them must share a requested code when codes are requested.
- `organization` means "PractitionerRoles of that organization": it narrows the practitioner
  and practitioner-role groups to the roles' members, or is a group of them when neither is
  given (schedules may belong to the roles or to their practitioners).
- A Schedule with unreadable availability rules offers nothing (and is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from fhir_server.fhir.errors import FhirError, InvalidRequest
from fhir_server.fhir.search.dates import epoch_ms
from fhir_server.fhir.search.extract import normalize_string
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
from fhir_server.scheduling.actor_options import (
    Groups,
    actor_group,
    actor_options,
    default_duration,
)
from fhir_server.scheduling.find_params import ACTOR_ORDER, Code, SlotQuery
from fhir_server.scheduling.finding import Candidate, FindRequest, FreeSlot, find_candidates
from fhir_server.scheduling.intervals import Interval, from_minutes, to_minutes
from fhir_server.scheduling.slot_records import (
    ScheduleRecord,
    busy_by_actor,
    ceil_minute,
    free_slot,
    parse_schedule,
    reference_key,
    serves,
)
from fhir_server.scheduling.state_machine import SLOT_FREE, SLOT_TENTATIVE
from fhir_server.services.actor_overlaps import overlapping_appointments_query
from fhir_server.services.context import FhirContext
from fhir_server.store.protocol import StoredResource

__all__ = ["FindResult", "FoundTime", "SlotQuery", "busy_query", "find_slots",
           "free_slots_query"]

log = logging.getLogger(__name__)

_ALL = 1_000_000  # "every match": the loads are bounded by actors and window, not by paging
_LOOKUP_LIMIT = 200
_GROUP_ORDER = (*ACTOR_ORDER[:2], "Organization", *ACTOR_ORDER[2:])


@dataclass(frozen=True, slots=True)
class FoundTime:
    """A bookable interval; `participants` are actor references with the slot ids they use."""

    start: datetime
    end: datetime
    participants: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class FindResult:
    """One page of found times, how many exist, the Slots they use, and the duration used."""

    found: list[FoundTime]
    total: int
    slots: list[StoredResource]
    duration: int


async def find_slots(ctx: FhirContext, request: SlotQuery, *, now: datetime,
                     may_use_emergency: bool = False) -> FindResult:
    """Times in the request's window when every group (AND) has a free option (OR)."""
    groups = await _groups(ctx, request)
    schedules = await _schedules(ctx, request, groups)
    options = actor_options(groups, schedules)
    duration = request.duration or default_duration(options, request.service_types)
    if not options or any(not group for _, group in options):
        return FindResult([], 0, [], duration)
    all_schedules = {s.id: s for _, group in options for o in group for s in o.schedules}
    slots, stored = await _free_slots(ctx, request, list(all_schedules), now=now)
    actors = {a for _, group in options for o in group for a in o.actors}
    busy = await _busy(ctx, actors | ({request.patient} if request.patient else set()),
                       request, all_schedules.values())
    find = FindRequest(
        start=ceil_minute(request.start), end=to_minutes(request.end),
        duration=duration,
        groups=tuple(actor_group(kind, group, slots, busy, now=now, lead=index == 0)
                     for index, (kind, group) in enumerate(options)),
        patient_busy=tuple(busy.get(request.patient, ())) if request.patient else (),
        may_use_emergency=may_use_emergency, now=to_minutes(now),
        earliest=ceil_minute(now), count=request.count)
    candidates, total = find_candidates(find)
    return _result(candidates, total, options, stored, duration)


def _result(candidates: Sequence[Candidate], total: int, options: Groups,
            stored: dict[str, StoredResource], duration: int) -> FindResult:
    """The found times with each choice's actors, and the Slots they use (each once)."""
    by_key = {o.key: o for _, group in options for o in group}
    found, used = [], {}
    for candidate in candidates:
        participants = []
        for key, ids in candidate.choices:
            participants += [(actor, ids) for actor in by_key[key].actors]
            used.update((i, stored[i]) for i in ids)
        found.append(FoundTime(from_minutes(candidate.start), from_minutes(candidate.end),
                               tuple(participants)))
    return FindResult(found, total, list(used.values()), duration)


# --- which actors: the request's groups, widened by ITI-115's organization and location text

async def _groups(ctx: FhirContext, request: SlotQuery) -> dict[str, list[str]]:
    """Actor references per group type, most preferred first."""
    groups = {kind: list(refs) for kind, refs in request.actors}
    if request.location_text:
        groups.setdefault("Location", []).extend(
            r for r in await _locations_named(ctx, request.location_text)
            if r not in groups["Location"])
    if request.organizations:
        roles, members = await _organization_members(ctx, request.organizations)
        narrowed = False
        for kind in ("Practitioner", "PractitionerRole"):
            if kind in groups:
                groups[kind] = [r for r in groups[kind] if r in members]
                narrowed = True
        if not narrowed:
            groups["Organization"] = list(dict.fromkeys([*roles, *sorted(members - set(roles))]))
    return {kind: groups[kind] for kind in _GROUP_ORDER if kind in groups}


async def _locations_named(ctx: FhirContext, texts: Sequence[str]) -> list[str]:
    """Locations whose name, alias or address contains any of the texts."""
    clause = Clause(tuple(StringMatch(param, normalize_string(text), "contains")
                          for text in texts for param in ("name", "address")))
    page = await ctx.store.search(StoreQuery("Location", where=(clause,),
                                             limit=_LOOKUP_LIMIT, with_total=False))
    return sorted(f"Location/{r.id}" for r in page.resources)


async def _organization_members(ctx: FhirContext,
                                organizations: Sequence[str]) -> tuple[list[str], set[str]]:
    """Active PractitionerRoles of the organizations, and those roles plus their practitioners."""
    clause = _references("organization", organizations)
    page = await ctx.store.search(StoreQuery(
        "PractitionerRole", where=(clause, _not_false("active")), limit=_LOOKUP_LIMIT,
        with_total=False))
    roles = sorted(f"PractitionerRole/{r.id}" for r in page.resources)
    members = set(roles)
    for role in page.resources:
        practitioner = reference_key((_body(role).get("practitioner") or {}).get("reference"))
        if practitioner:
            members.add(practitioner)
    return roles, members


# --- schedules and options

async def _schedules(ctx: FhirContext, request: SlotQuery,
                     groups: dict[str, list[str]]) -> list[ScheduleRecord]:
    """Active Schedules of the requested actors (or, without actors, of the requested codes)."""
    actors = [r for kind, refs in groups.items() if kind != "Schedule" for r in refs]
    by_id = [r.split("/", 1)[1] for r in groups.get("Schedule", ())]
    found: list[StoredResource] = []
    if actors:
        found += await _search(ctx, "Schedule", _references("actor", actors),
                               _not_false("active"))
    if by_id:
        found += await _search(ctx, "Schedule", Clause((IdMatch(tuple(by_id)),)),
                               _not_false("active"))
    if not groups and (request.service_types or request.specialties):
        found += await _search(ctx, "Schedule", _not_false("active"),
                               *_code_clauses(request.service_types, request.specialties))
    elif not groups and not request.organizations and not request.location_text:
        raise InvalidRequest("Name at least one actor, service-type or specialty to search",
                             code="required", expression="practitioner")
    schedules = {}
    for stored in found:
        try:
            schedule = parse_schedule(stored.id, _body(stored))
        except FhirError as error:
            log.warning("Schedule/%s has unreadable availability rules, skipped: %s",
                        stored.id, error)
            continue
        if serves(schedule, request):
            schedules[schedule.id] = schedule
    return sorted(schedules.values(), key=lambda s: s.id)


# --- the loads

async def _search(ctx: FhirContext, resource_type: str, *where: Clause) -> list[StoredResource]:
    page = await ctx.store.search(StoreQuery(resource_type, where=where, limit=_ALL,
                                             with_total=False))
    return page.resources


def _references(param: str, references: Iterable[str]) -> Clause:
    """One OR clause over local `Type/id` references."""
    matches: list[Predicate] = []
    for reference in references:
        kind, _, id_ = reference.partition("/")
        matches.append(ReferenceMatch(param, kind, id_))
    return Clause(tuple(matches))


def _not_false(param: str) -> Clause:
    return Clause((TokenMatch(param, None, "false"),), negate=True)


def _tokens(param: str, codes: Iterable[Code]) -> Clause:
    return Clause(tuple(TokenMatch(param, system, code) for system, code in codes))


def _code_clauses(service_types: Sequence[Code], specialties: Sequence[Code]) -> list[Clause]:
    clauses = []
    if service_types:
        clauses.append(_tokens("service-type", service_types))
    if specialties:
        clauses.append(_tokens("specialty", specialties))
    return clauses


def free_slots_query(schedule_ids: Iterable[str], start: datetime, end: datetime) -> StoreQuery:
    """The free and busy-tentative Slots of the Schedules overlapping [start, end)."""
    return StoreQuery("Slot", where=(
        _references("schedule", (f"Schedule/{i}" for i in schedule_ids)),
        _tokens("status", ((None, SLOT_FREE), (None, SLOT_TENTATIVE))),
        Clause((DateMatch("start", low_lt=epoch_ms(end)),)),
        Clause((DateMatch("end", high_gt=epoch_ms(start)),))), limit=_ALL, with_total=False)


def busy_query(actors: Iterable[str], start: datetime, end: datetime) -> StoreQuery:
    """The active Appointments of the actors overlapping [start, end), however long they are."""
    return overlapping_appointments_query(actors, start, end, limit=_ALL)


async def _free_slots(ctx: FhirContext, request: SlotQuery, schedule_ids: list[str], *,
                      now: datetime) -> tuple[dict[str, list[FreeSlot]],
                                              dict[str, StoredResource]]:
    """Slots free at `now` in the window, by schedule, and the stored Slots by id."""
    if not schedule_ids:
        return {}, {}
    page = await ctx.store.search(free_slots_query(schedule_ids, request.start, request.end))
    by_schedule: dict[str, list[FreeSlot]] = {}
    stored: dict[str, StoredResource] = {}
    for resource in page.resources:
        slot = free_slot(resource.id, _body(resource), request, now)
        if slot is not None:
            by_schedule.setdefault(slot.schedule_id, []).append(slot)
            stored[resource.id] = resource
    return by_schedule, stored


async def _busy(ctx: FhirContext, actors: set[str], request: SlotQuery,
                schedules: Iterable[ScheduleRecord]) -> dict[str, list[Interval]]:
    """Times each actor (and the patient) is taken by an active appointment, in one query.

    The window is widened by the largest buffers, as a visit's buffers must be clear too.
    """
    if not actors:
        return {}
    schedules = list(schedules)
    before = max((s.buffer_before for s in schedules), default=0)
    after = max((s.buffer_after for s in schedules), default=0)
    page = await ctx.store.search(busy_query(actors, request.start - timedelta(minutes=before),
                                             request.end + timedelta(minutes=after)))
    return busy_by_actor((_body(r) for r in page.resources), actors)


# --- small conversions

def _body(stored: StoredResource) -> dict:
    body = orjson.loads(stored.body or b"{}")
    return body if isinstance(body, dict) else {}
