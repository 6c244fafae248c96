"""The conflicts slots cannot express: a participant with another active appointment at the time.

One search finds the active appointments of every participant actor that overlap the window
(`date` before its end and our custom `end` after its start, so an appointment of any length is
seen); those that really overlap clash, unless the shared actor's time is accounted for by
slots on both sides (the same actor's schedule claimed by us and referenced by them: a group
session's seats, or an overbooking the slot claim allowed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.errors import Conflict
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    ReferenceMatch,
    StoreQuery,
    TokenMatch,
)
from fhir_server.scheduling.slot_hold import slot_ids as slot_ids_of
from fhir_server.scheduling.state_machine import TIME_HOLDING_STATES
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import Window, body_of

OVERLAP_LIMIT = 1000
_MS = timedelta(milliseconds=1)
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def actor_references(appointment: Mapping[str, Any], base_url: str = "") -> set[str]:
    """The participants' actors as local `Type/id` references (others are skipped)."""
    found: set[str] = set()
    for participant in appointment.get("participant", ()):
        reference = (participant.get("actor") or {}).get("reference")
        if not isinstance(reference, str):
            continue
        if base_url and reference.startswith(base_url + "/"):
            reference = reference[len(base_url) + 1:]
        parts = reference.split("/")
        if len(parts) == 2 and all(parts) and not reference.startswith("#"):
            found.add(reference)
    return found


async def check_actor_overlaps(ctx: FhirContext, appointment: Mapping[str, Any], *, id: str,
                               window: Window | None, slot_ids: Sequence[str],
                               now: datetime) -> None:
    """Raise Conflict (409) if a participant has another overlapping active appointment."""
    actors = actor_references(appointment, ctx.base_url)
    if window is None or not actors:
        return
    clashes = [other for other in await _candidates(ctx, actors, window)
               if other.get("id") != id and _overlaps(other, window)]
    if not clashes:
        return
    ours = await _schedules_by_actor(ctx, slot_ids)
    theirs = await _slot_schedules(ctx, [s for other in clashes for s in slot_ids_of(other)])
    for other in clashes:
        other_schedules = {theirs.get(s) for s in slot_ids_of(other)}
        for actor in sorted(actors & actor_references(other, ctx.base_url)):
            if not ours.get(actor, set()) & other_schedules:
                raise Conflict(f"{actor} already has an appointment at that time "
                               f"(Appointment/{other.get('id')})",
                               expression="Appointment.participant")


def overlapping_appointments_query(actors: Iterable[str], start: datetime, end: datetime, *,
                                   limit: int = OVERLAP_LIMIT) -> StoreQuery:
    """Active Appointments of any of the `Type/id` actors overlapping [start, end), in one query.

    Instants are indexed to their precision, so an appointment ending exactly at `start` may
    match too; callers compare the real times.
    """
    references = tuple(ReferenceMatch("actor", *actor.split("/", 1)) for actor in sorted(actors))
    return StoreQuery("Appointment", (
        Clause(references),
        Clause(tuple(TokenMatch("status", None, s) for s in sorted(TIME_HOLDING_STATES))),
        Clause((DateMatch("date", low_lt=_ms(end)),)),
        Clause((DateMatch("end", high_gt=_ms(start)),)),
    ), limit=limit, with_total=False)


async def _candidates(ctx: FhirContext, actors: set[str], window: Window) -> list[dict[str, Any]]:
    """Active appointments of any of the actors overlapping the window."""
    page = await ctx.store.search(overlapping_appointments_query(actors, *window))
    return [body_of(r) for r in page.resources]


def _overlaps(other: Mapping[str, Any], window: Window) -> bool:
    start, end = other.get("start"), other.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return False
    return parse_instant(start) < window[1] and parse_instant(end) > window[0]


async def _slot_schedules(ctx: FhirContext, ids: Sequence[str]) -> dict[str, str]:
    """Slot id → its Schedule id, for the slots that exist."""
    if not ids:
        return {}
    slots = await ctx.store.read_many("Slot", sorted(set(ids)))
    return {s.id: _reference_id(body_of(s).get("schedule")) for s in slots}


async def _schedules_by_actor(ctx: FhirContext, slot_ids: Sequence[str]) -> dict[str, set[str]]:
    """Actor reference → the schedules of our slots that belong to it."""
    schedule_of = await _slot_schedules(ctx, slot_ids)
    schedules = await ctx.store.read_many("Schedule", sorted(set(schedule_of.values())))
    by_actor: dict[str, set[str]] = {}
    for schedule in schedules:
        for actor in body_of(schedule).get("actor", ()):
            reference = actor.get("reference")
            if isinstance(reference, str):
                by_actor.setdefault(reference, set()).add(schedule.id)
    return by_actor


def _reference_id(reference: Any) -> str:
    value = reference.get("reference", "") if isinstance(reference, Mapping) else ""
    return str(value).rsplit("/", 1)[-1]


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS
