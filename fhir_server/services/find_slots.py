"""Find bookable times (`$find-slots`, ITI-115 `$find`): load in a few indexed queries, then find.

Queries, whatever the number of actors or days: the Schedules of the requested actors (one
query with every reference in one OR clause, plus one by id for `schedule`), their FREE Slots
in the window (one), and the active Appointments of all those actors and the patient (one).
ITI-115's `organization` costs one PractitionerRole query and `location-string` one Location
query. Everything else is the pure finder (`scheduling/finding.py`) on epoch minutes.

Rules worth knowing:
- A Schedule or Slot without serviceType/specialty (or Slot.appointmentType) serves any; one
  with them must share a requested code when codes are requested.
- `organization` means "PractitionerRoles of that organization": it narrows the practitioner
  and practitioner-role groups to the roles' members, or is a group of them when neither is
  given (schedules may belong to the roles or to their practitioners).
- Minimum notice and booking horizon come from each Schedule's rules: the lead group's slots
  must start inside them; other groups' slots are cut to start no earlier than their notice.
- An Appointment is assumed to last at most `MAX_VISIT`: older starts are not loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

import orjson

from fhir_server.fhir.errors import FhirError, InvalidRequest
from fhir_server.fhir.instants import parse_instant
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
from fhir_server.scheduling.availability import (
    DEFAULT_SLOT_MINUTES,
    SLOT_EMERGENCY_RESERVE_URL,
    AvailabilityRules,
    bookable_window,
    rules_from_schedule,
)
from fhir_server.scheduling.find_params import ACTOR_ORDER, Code, SlotQuery
from fhir_server.scheduling.finding import (
    ActorGroup,
    ActorSlots,
    FindRequest,
    FreeSlot,
    find_candidates,
)
from fhir_server.scheduling.intervals import Interval, from_minutes, to_minutes
from fhir_server.scheduling.state_machine import SLOT_FREE, SLOT_TENTATIVE, TIME_HOLDING_STATES
from fhir_server.services.context import FhirContext
from fhir_server.store.protocol import StoredResource

__all__ = ["SLOT_HOLD_URL", "FindResult", "FoundTime", "SlotQuery", "find_slots"]

log = logging.getLogger(__name__)

SLOT_HOLD_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/slot-hold"
MAX_VISIT = timedelta(days=1)
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


@dataclass(frozen=True, slots=True)
class _Schedule:
    id: str
    actors: tuple[str, ...]
    rules: AvailabilityRules | None
    service_types: tuple[Code, ...]
    specialties: tuple[Code, ...]


@dataclass(slots=True)
class _Option:
    """One OR choice: an actor (or a whole Schedule) and the schedules whose slots it offers."""

    key: str
    actors: tuple[str, ...]
    schedules: list[_Schedule] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Slot:
    stored: StoredResource
    schedule_id: str
    start: int
    end: int
    emergency_release: int | None


async def find_slots(ctx: FhirContext, request: SlotQuery, *, now: datetime,
                     may_use_emergency: bool = False) -> FindResult:
    """Times in the request's window when every group (AND) has a free option (OR)."""
    groups = await _groups(ctx, request)
    schedules = await _schedules(ctx, request, groups)
    options = _options(groups, schedules)
    duration = request.duration or _default_duration(options, request.service_types)
    if not options or any(not group for _, group in options):
        return FindResult([], 0, [], duration)
    all_schedules = {s.id: s for _, group in options for o in group for s in o.schedules}
    slots = await _free_slots(ctx, request, list(all_schedules), now=now)
    actors = {a for _, group in options for o in group for a in o.actors}
    margin_before = max((_rules(s).buffer_before for s in all_schedules.values()), default=0)
    margin_after = max((_rules(s).buffer_after for s in all_schedules.values()), default=0)
    busy = await _busy(ctx, actors | ({request.patient} if request.patient else set()),
                       request, before=margin_before, after=margin_after)
    find = FindRequest(
        start=_ceil_minute(request.start), end=to_minutes(request.end),
        duration=duration,
        groups=tuple(_actor_group(kind, group, slots, busy, now=now, lead=index == 0)
                     for index, (kind, group) in enumerate(options)),
        patient_busy=tuple(busy.get(request.patient, ())) if request.patient else (),
        may_use_emergency=may_use_emergency, now=to_minutes(now),
        earliest=_ceil_minute(now), count=request.count)
    candidates, total = find_candidates(find)
    by_key = {o.key: o for _, group in options for o in group}
    stored = {s.stored.id: s.stored for slot_list in slots.values() for s in slot_list}
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
        practitioner = _reference_key((_body(role).get("practitioner") or {}).get("reference"))
        if practitioner:
            members.add(practitioner)
    return roles, members


# --- schedules and options

async def _schedules(ctx: FhirContext, request: SlotQuery,
                     groups: dict[str, list[str]]) -> list[_Schedule]:
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
        schedule = _parse_schedule(stored)
        if schedule is not None and _serves(schedule, request):
            schedules[schedule.id] = schedule
    return sorted(schedules.values(), key=lambda s: s.id)


def _options(groups: dict[str, list[str]],
             schedules: list[_Schedule]) -> list[tuple[str, list[_Option]]]:
    """Each group's options in preference order; without groups, each Schedule is an option."""
    if not groups:
        return [("Schedule", [_schedule_option(s) for s in schedules])] if schedules else []
    by_actor: dict[str, list[_Schedule]] = {}
    for schedule in schedules:
        for actor in schedule.actors:
            by_actor.setdefault(actor, []).append(schedule)
    by_id = {f"Schedule/{s.id}": s for s in schedules}
    options = []
    for kind, refs in groups.items():
        if kind == "Schedule":
            group = [_schedule_option(by_id[r]) for r in refs if r in by_id]
        else:
            group = [_Option(r, (r,), by_actor.get(r, [])) for r in refs]
        options.append((kind, group))
    return options


def _schedule_option(schedule: _Schedule) -> _Option:
    return _Option(f"Schedule/{schedule.id}", schedule.actors, [schedule])


def _default_duration(options: list[tuple[str, list[_Option]]], services: Sequence[Code]) -> int:
    """The first matched schedule's slot length for the service (its default otherwise)."""
    for _, group in options[:1]:
        for option in group:
            for schedule in option.schedules:
                if schedule.rules is not None:
                    return schedule.rules.slot_minutes_for(services)
                return DEFAULT_SLOT_MINUTES
    return DEFAULT_SLOT_MINUTES


def _parse_schedule(stored: StoredResource) -> _Schedule | None:
    """A Schedule's actors, codes and rules; one with unreadable rules offers nothing."""
    body = _body(stored)
    try:
        rules = rules_from_schedule(body)
    except FhirError as error:
        log.warning("Schedule/%s has unreadable availability rules, skipped: %s",
                    stored.id, error)
        return None
    actors = tuple(a for a in (_reference_key(x.get("reference"))
                               for x in body.get("actor", []) if isinstance(x, dict)) if a)
    return _Schedule(stored.id, actors, rules, _codes_of(body.get("serviceType")),
                     _codes_of(body.get("specialty")))


def _serves(schedule: _Schedule, request: SlotQuery) -> bool:
    return (_accepts(schedule.service_types, request.service_types)
            and _accepts(schedule.specialties, request.specialties))


def _accepts(offered: Sequence[Code], wanted: Sequence[Code]) -> bool:
    """No codes on the resource serve anything; otherwise one must match a wanted code."""
    if not offered or not wanted:
        return True
    return any(code == want_code and (want_system is None or system == want_system)
               for system, code in offered for want_system, want_code in wanted)


def _codes_of(concepts: object) -> tuple[Code, ...]:
    """Codings of a CodeableConcept or a list of them."""
    items = concepts if isinstance(concepts, list) else [concepts] if concepts else []
    return tuple((c.get("system"), c["code"]) for concept in items if isinstance(concept, dict)
                 for c in concept.get("coding", []) if isinstance(c, dict) and c.get("code"))


def _rules(schedule: _Schedule) -> AvailabilityRules | _NoRules:
    return schedule.rules or _NO_RULES


@dataclass(frozen=True, slots=True)
class _NoRules:
    buffer_before: int = 0
    buffer_after: int = 0


_NO_RULES = _NoRules()


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


async def _free_slots(ctx: FhirContext, request: SlotQuery, schedule_ids: list[str], *,
                      now: datetime) -> dict[str, list[_Slot]]:
    """Free slots (or busy-tentative ones whose hold lapsed) in the window, by schedule."""
    if not schedule_ids:
        return {}
    found = await _search(
        ctx, "Slot", _references("schedule", (f"Schedule/{i}" for i in schedule_ids)),
        _tokens("status", ((None, SLOT_FREE), (None, SLOT_TENTATIVE))),
        Clause((DateMatch("start", low_lt=epoch_ms(request.end)),)),
        Clause((DateMatch("end", high_gt=epoch_ms(request.start)),)))
    now_ms = epoch_ms(now)
    by_schedule: dict[str, list[_Slot]] = {}
    for stored in found:
        slot = _free_slot(stored, request, now_ms)
        if slot is not None:
            by_schedule.setdefault(slot.schedule_id, []).append(slot)
    return by_schedule


def _free_slot(stored: StoredResource, request: SlotQuery, now_ms: int) -> _Slot | None:
    """The slot in minutes if it is free now and offers the requested codes, else None."""
    body = _body(stored)
    if body.get("status") == SLOT_TENTATIVE and not _hold_lapsed(body, now_ms):
        return None
    for key, wanted in (("serviceType", request.service_types),
                        ("specialty", request.specialties),
                        ("appointmentType", request.appointment_types)):
        if wanted and key in body and not _accepts(_codes_of(body[key]), wanted):
            return None
    schedule = _reference_key((body.get("schedule") or {}).get("reference"))
    try:
        start, end = _minute(body["start"]), _minute(body["end"], up=True)
    except (KeyError, TypeError, ValueError):
        return None
    release = None
    for extension in body.get("extension", ()):
        if extension.get("url") == SLOT_EMERGENCY_RESERVE_URL and "valueDateTime" in extension:
            release = _minute(extension["valueDateTime"], up=True)
    return _Slot(stored, schedule.split("/", 1)[1] if schedule else "", start, end, release)


def _hold_lapsed(body: dict, now_ms: int) -> bool:
    """Whether a busy-tentative slot's hold (the slot-hold extension) expired before now."""
    for extension in body.get("extension", ()):
        if extension.get("url") != SLOT_HOLD_URL:
            continue
        for sub in extension.get("extension", ()):
            if sub.get("url") == "expires" and isinstance(sub.get("valueInstant"), str):
                try:
                    return epoch_ms(parse_instant(sub["valueInstant"])) < now_ms
                except ValueError:
                    return False
    return False


async def _busy(ctx: FhirContext, actors: set[str], request: SlotQuery, *, before: int,
                after: int) -> dict[str, list[Interval]]:
    """Times each actor (and the patient) is taken by an active appointment, in one query."""
    if not actors:
        return {}
    earliest = request.start - MAX_VISIT - timedelta(minutes=before)
    latest = request.end + timedelta(minutes=after)
    found = await _search(
        ctx, "Appointment", _references("actor", sorted(actors)),
        _tokens("status", ((None, s) for s in sorted(TIME_HOLDING_STATES))),
        Clause((DateMatch("date", low_lt=epoch_ms(latest), high_gt=epoch_ms(earliest)),)))
    busy: dict[str, list[Interval]] = {}
    for stored in found:
        body = _body(stored)
        try:
            interval = (_minute(body["start"]), _minute(body["end"], up=True))
        except (KeyError, TypeError, ValueError):
            continue
        for participant in body.get("participant", ()):
            actor = _reference_key((participant.get("actor") or {}).get("reference"))
            if actor in actors and participant.get("status") != "declined":
                busy.setdefault(actor, []).append(interval)
    return busy


# --- the finder's input

def _actor_group(kind: str, group: list[_Option], slots: dict[str, list[_Slot]],
                 busy: dict[str, list[Interval]], *, now: datetime, lead: bool) -> ActorGroup:
    return ActorGroup(kind, tuple(_actor_slots(kind, o, slots, busy, now=now, lead=lead)
                                  for o in group))


def _actor_slots(kind: str, option: _Option, slots: dict[str, list[_Slot]],
                 busy: dict[str, list[Interval]], *, now: datetime, lead: bool) -> ActorSlots:
    """One option's usable slots, busy time and buffers (the largest of its schedules')."""
    free: list[FreeSlot] = []
    for schedule in option.schedules:
        low, high = _bookable(schedule, now)
        for slot in slots.get(schedule.id, ()):
            start = slot.start
            if lead and (start < low or (high is not None and start > high)):
                continue
            if not lead:
                start = max(start, low)  # a visit may start mid-slot, never before notice
                if start >= slot.end:
                    continue
            free.append(FreeSlot(slot.stored.id, schedule.id, start, slot.end,
                                 slot.emergency_release))
    rules = [_rules(s) for s in option.schedules]
    return ActorSlots(
        actor=option.key, actor_type=kind, slots=tuple(free),
        busy=tuple(i for actor in option.actors for i in busy.get(actor, ())),
        buffer_before=max((r.buffer_before for r in rules), default=0),
        buffer_after=max((r.buffer_after for r in rules), default=0))


def _bookable(schedule: _Schedule, now: datetime) -> tuple[int, int | None]:
    """Earliest and latest start minute the schedule's notice and horizon allow."""
    if schedule.rules is None:
        return -(2**62), None
    earliest, latest = bookable_window(schedule.rules, now)
    return _ceil_minute(earliest), None if latest is None else to_minutes(latest)


# --- small conversions

def _body(stored: StoredResource) -> dict:
    body = orjson.loads(stored.body or b"{}")
    return body if isinstance(body, dict) else {}


def _reference_key(reference: object) -> str | None:
    """`Type/id` of a relative or absolute reference, or None."""
    if not isinstance(reference, str):
        return None
    if reference.count("/") == 1 and not reference.startswith("/"):
        return reference  # the usual relative `Type/id`
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 else None


@lru_cache(maxsize=1 << 16)
def _minute(value: str, *, up: bool = False) -> int:
    """Epoch minute of an instant string; cached, as many slots share their times."""
    moment = parse_instant(value)
    if moment.utcoffset() is None:
        raise ValueError("instant without zone")
    return _ceil_minute(moment) if up else to_minutes(moment)


def _ceil_minute(moment: datetime) -> int:
    return -(-epoch_ms(moment) // 60_000)
