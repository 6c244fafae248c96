"""Generate a Schedule's Slots from its availability rules, idempotently (`$generate-slots`).

The rules are the Schedule's `schedule-availability` extension or, without one, the R4
availability of its actor (`PractitionerRole.availableTime`, `Location.hoursOfOperation`).
Stored slots in the window are loaded with one search, reconciled with the plan by
`scheduling.slot_plan`, and the difference is written: new and changed free slots as plain
versions, unwanted free slots as logical deletes. Booked, held, blocked and past slots are
never touched; booked ones the rules no longer want are reported with their Appointments.

`ScheduleRules` runs the same generation whenever a Schedule is written, over its
`planningHorizon` from now on (the next 28 days when it has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.scheduling.availability import (
    AvailabilityRules,
    plan_slots,
    rules_from_location,
    rules_from_practitioner_role,
    rules_from_schedule,
    schedule_time_zone,
)
from fhir_server.scheduling.slot_plan import SlotChanges, reconcile_slots
from fhir_server.services import resources
from fhir_server.services.context import FhirContext, ResourceChange
from fhir_server.services.search import search
from fhir_server.services.versions import next_version, tombstone
from fhir_server.store.protocol import StoredResource, VersionWrite, WriteConflict

DEFAULT_HORIZON = timedelta(days=28)
PAGE_SIZE = 1000  # the search layer's largest `_count`
WRITE_BATCH = 200
INACTIVE_APPOINTMENTS = frozenset({"cancelled", "entered-in-error"})

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class GenerationReport:
    """What one generation run did to a schedule's slots in [start, end).

    `rules` says where the rules came from (`schedule-availability`, `PractitionerRole/x`,
    `Location/y`) and is None when the schedule has none, in which case nothing was done.
    `orphaned` are booked or held slots the rules no longer call for; `affected_appointments`
    are the Appointments (ids) that hold them.
    """

    schedule_id: str
    start: datetime
    end: datetime
    rules: str | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    affected_appointments: list[str] = field(default_factory=list)


async def generate_slots(ctx: FhirContext, schedule_id: str, *, start: datetime, end: datetime,
                         now: datetime) -> GenerationReport:
    """Make the schedule's slots in [start, end) match its rules; 404/410 for no schedule."""
    for name, moment in (("start", start), ("end", end)):
        if moment.utcoffset() is None:
            raise InvalidRequest(f"'{name}' needs a time zone", expression=name)
    if end <= start:
        raise InvalidRequest("'end' must be after 'start'", expression="end")
    stored = await resources.read(ctx, "Schedule", schedule_id)
    return await _generate(ctx, _body(stored), start=start, end=end, now=now)


def generation_window(schedule: Resource, *, now: datetime) -> tuple[datetime, datetime] | None:
    """The schedule's planning horizon from `now` on (28 days without one); None if past."""
    zone = schedule_time_zone(schedule) or ZoneInfo("UTC")
    horizon = schedule.get("planningHorizon") or {}
    start = max(_date_time(horizon.get("start"), zone) or now, now)
    end = _date_time(horizon.get("end"), zone) or start + DEFAULT_HORIZON
    return (start, end) if end > start else None


async def generate_over_horizon(ctx: FhirContext, schedule_id: str, *, now: datetime,
                                days: int | None = None) -> GenerationReport:
    """Generate from now for `days`, or over the schedule's horizon (28 days without one)."""
    schedule = _body(await resources.read(ctx, "Schedule", schedule_id))
    window = (generation_window(schedule, now=now) if days is None
              else (now, now + timedelta(days=days)))
    if window is None:
        return GenerationReport(schedule_id, now, now)
    return await _generate(ctx, schedule, start=window[0], end=window[1], now=now)


async def active_schedule_ids(ctx: FhirContext, *, now: datetime) -> list[str]:
    """Ids of every active Schedule, in id order (paged through one search)."""
    params = [("active", "true"), ("_sort", "_id"), ("_total", "none"),
              ("_count", str(PAGE_SIZE))]
    ids: list[str] = []
    while True:
        page = await search(ctx, "Schedule", [*params, ("_offset", str(len(ids)))], now=now)
        ids.extend(schedule.id for schedule in page.matches)
        if len(page.matches) < PAGE_SIZE:
            return ids


class ScheduleRules:
    """Schedule writes regenerate the schedule's slots over its horizon."""

    transactional = True

    async def write(self, ctx: FhirContext, change: ResourceChange) -> StoredResource:
        """Refuse unreadable rules (422), commit the Schedule, then generate its slots."""
        if change.resource is not None:
            rules_from_schedule(change.resource)
            schedule_time_zone(change.resource)
        stored = await resources.commit_plain(ctx, change)
        await self.after_commit(ctx, stored, now=change.now)
        return stored

    async def after_commit(self, ctx: FhirContext, stored: StoredResource, *,
                           now: datetime) -> None:
        """Generate over the horizon of an active Schedule (deletions leave slots alone)."""
        if stored.deleted:
            return
        schedule = _body(stored)
        window = generation_window(schedule, now=now)
        if schedule.get("active", True) and window is not None:
            await _generate(ctx, schedule, start=window[0], end=window[1], now=now)


async def _generate(ctx: FhirContext, schedule: Resource, *, start: datetime, end: datetime,
                    now: datetime) -> GenerationReport:
    schedule_id = schedule["id"]
    found = await _rules(ctx, schedule)
    if found is None:
        return GenerationReport(schedule_id, start, end)
    rules, source = found
    planned = plan_slots(rules, start, end, service_codings=_service_codings(schedule))
    existing = {slot.id: slot for slot in await _existing_slots(ctx, schedule_id, start, end,
                                                                now=now)}
    changes = reconcile_slots(schedule_id, planned, [_body(s) for s in existing.values()],
                              now=now, template=schedule)
    written = await _write_changes(ctx, changes, existing, now=now)
    affected = await _appointments_holding(ctx, changes.orphaned, now=now)
    return GenerationReport(schedule_id, start, end, rules=source, created=written["create"],
                            updated=written["update"], removed=written["remove"],
                            kept=changes.keep, orphaned=changes.orphaned,
                            affected_appointments=affected)


async def _rules(ctx: FhirContext, schedule: Resource) -> tuple[AvailabilityRules, str] | None:
    """The extension's rules, else the first actor with R4 availability (roles before rooms)."""
    rules = rules_from_schedule(schedule)
    if rules is not None:
        return rules, "schedule-availability"
    zone = schedule_time_zone(schedule) or ZoneInfo("UTC")
    references = [actor.get("reference") or "" for actor in schedule.get("actor") or []]
    for kind, parse in (("PractitionerRole", rules_from_practitioner_role),
                        ("Location", rules_from_location)):
        for reference in references:
            if not reference.startswith(f"{kind}/"):
                continue
            actor = await ctx.store.read(kind, reference.removeprefix(f"{kind}/"))
            if actor is None or actor.deleted:
                continue
            rules = parse(_body(actor), time_zone=zone)
            if rules.available:
                return rules, reference
    return None


def _service_codings(schedule: Resource) -> list[tuple[str | None, str]]:
    return [(coding.get("system"), coding["code"])
            for concept in schedule.get("serviceType") or []
            for coding in concept.get("coding") or [] if coding.get("code")]


async def _existing_slots(ctx: FhirContext, schedule_id: str, start: datetime, end: datetime,
                          *, now: datetime) -> list[StoredResource]:
    """The schedule's slots lying wholly inside the window: one search, paged by `_offset`."""
    params = [("schedule", f"Schedule/{schedule_id}"), ("start", f"ge{_instant(start)}"),
              ("start", f"lt{_instant(end)}"), ("end", f"le{_instant(end)}"),
              ("_sort", "start"), ("_total", "none"), ("_count", str(PAGE_SIZE))]
    found: list[StoredResource] = []
    while True:
        page = await search(ctx, "Slot", [*params, ("_offset", str(len(found)))], now=now)
        found.extend(page.matches)
        if len(page.matches) < PAGE_SIZE:
            return found


async def _appointments_holding(ctx: FhirContext, slot_ids: Sequence[str], *,
                                now: datetime) -> list[str]:
    """Ids of the live Appointments that reference any of the slots (one search)."""
    if not slot_ids:
        return []
    params = [("slot", ",".join(f"Slot/{id}" for id in slot_ids)), ("_total", "none"),
              ("_count", str(PAGE_SIZE))]
    page = await search(ctx, "Appointment", params, now=now)
    return sorted(a.id for a in page.matches
                  if _body(a).get("status") not in INACTIVE_APPOINTMENTS)


Kind = Literal["create", "update", "remove"]


@dataclass(slots=True)
class _Pending:
    """One slot write; kept with its source so a lost race can be redone or dropped alone."""

    kind: Kind
    id: str
    slot: Resource | None
    current: StoredResource | None
    write: VersionWrite


async def _write_changes(ctx: FhirContext, changes: SlotChanges,
                         existing: dict[str, StoredResource], *,
                         now: datetime) -> dict[Kind, list[str]]:
    """Commit the changes in batches; a batch that lost a race is redone slot by slot."""
    pending = [_pending(ctx, "create", slot["id"], slot, None, now) for slot in changes.create]
    pending += [_pending(ctx, "update", slot["id"], slot, existing[slot["id"]], now)
                for slot in changes.update]
    pending += [_pending(ctx, "remove", id, None, existing[id], now) for id in changes.remove]
    done: dict[Kind, list[str]] = {"create": [], "update": [], "remove": []}
    for offset in range(0, len(pending), WRITE_BATCH):
        batch = pending[offset:offset + WRITE_BATCH]
        try:
            await ctx.store.commit([item.write for item in batch])
            committed = batch
        except WriteConflict:
            committed = [item for item in batch if await _commit_alone(ctx, item, now=now)]
        for item in committed:
            done[item.kind].append(item.id)
    return done


def _pending(ctx: FhirContext, kind: Kind, id: str, slot: Resource | None,
             current: StoredResource | None, now: datetime) -> _Pending:
    if slot is None:
        assert current is not None
        write = tombstone(current, now=now)
    else:
        write = next_version(ctx, dict(slot), resource_type="Slot", id=id, current=current,
                             now=now, method="PUT" if current else "POST")
    return _Pending(kind, id, slot, current, write)


async def _commit_alone(ctx: FhirContext, item: _Pending, *, now: datetime) -> bool:
    """Commit one write; a new slot may replace a deleted one, anything else that moved is
    left to whoever moved it (e.g. a booking that claimed a slot we meant to remove)."""
    write = item.write
    if item.kind == "create":
        current = await ctx.store.read("Slot", item.id)
        if current is not None and not current.deleted:
            return False
        assert item.slot is not None
        write = next_version(ctx, dict(item.slot), resource_type="Slot", id=item.id,
                             current=current, now=now, method="PUT" if current else "POST")
    try:
        await ctx.store.commit([write])
    except WriteConflict:
        return False
    return True


def _body(stored: StoredResource) -> Resource:
    body: Resource = orjson.loads(stored.body or b"{}")
    return body


def _date_time(value: Any, zone: ZoneInfo) -> datetime | None:
    """A FHIR dateTime; a date (or year-month) means local midnight starting it."""
    if not isinstance(value, str) or not value:
        return None
    padded = value + "-01-01"[len(value) - 4:] if len(value) < 10 else value
    moment = datetime.fromisoformat(padded.replace("Z", "+00:00"))
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=zone)


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
