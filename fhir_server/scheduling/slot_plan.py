"""Reconciling planned slots with stored ones, so `$generate-slots` can run again and again.

Stored slots are matched to planned ones by their (start, end) instants, not by id, so slots
made by hand or by the demo seed are adopted rather than duplicated. Only FREE slots that start
at or after `now` are ever created, updated or removed: a booked, held or past slot is history
the rules must not rewrite. Every existing id lands in exactly one of keep, update, remove and
orphaned.

A group session of capacity N is N Slots at the same time (seat 1 has the plain id, later seats
a `-2`, `-3` ... suffix), because each seat must be claimable with its own conditional update.
"""

from __future__ import annotations

import copy
import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL, PlannedSlot

TEMPLATE_KEYS = ("serviceType", "specialty", "appointmentType")
HELD_STATUSES = frozenset({"busy", "busy-tentative"})
_MAX_ID = 64
_SEAT_ORDER = {"busy": 0, "busy-tentative": 0, "busy-unavailable": 1, "free": 2}

Resource = dict[str, Any]
TimeKey = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class SlotChanges:
    """What to write so the stored slots match the plan; `orphaned` is for the caller to report.

    `update` holds whole replacement Slots for free future slots whose copied codes or
    emergency release changed.
    """

    create: list[Resource]
    remove: list[str]
    keep: list[str]
    orphaned: list[str]
    update: list[Resource] = field(default_factory=list)


def reconcile_slots(schedule_id: str, planned: Sequence[PlannedSlot],
                    existing: Sequence[Resource], *, now: datetime,
                    template: Mapping[str, Any]) -> SlotChanges:
    """Changes that make a schedule's slots in the window match `planned`, idempotently."""
    changes = SlotChanges(create=[], remove=[], keep=[], orphaned=[])
    by_time = _group_by_time(existing)
    taken = {slot["id"] for slot in existing if "id" in slot}
    matched: set[str] = set()
    for plan in planned:
        if plan.start < now:
            continue
        seats = sorted(by_time.get((_utc(plan.start), _utc(plan.end)), []), key=_seat_rank)
        for slot in seats[:plan.capacity]:
            matched.add(slot["id"])
            _match(slot, plan, template, now, changes)
        new_ids = _unused_ids(_base_id(schedule_id, plan.start), taken)
        for _ in range(plan.capacity - len(seats[:plan.capacity])):
            slot_id = next(new_ids)
            taken.add(slot_id)
            changes.create.append(new_slot(slot_id, schedule_id, plan, template))
    for slot in existing:
        if slot.get("id") not in matched:
            _unmatched(slot, now, changes)
    return changes


def new_slot(slot_id: str, schedule_id: str, plan: PlannedSlot,
             template: Mapping[str, Any]) -> Resource:
    """A free Slot for a planned time, with the schedule's codes and any emergency hold."""
    slot: Resource = {"resourceType": "Slot", "id": slot_id}
    slot.update(_copied_codes(template))
    slot.update({"schedule": {"reference": f"Schedule/{schedule_id}"}, "status": "free",
                 "start": _instant(plan.start), "end": _instant(plan.end)})
    if plan.emergency_release is not None:
        slot["extension"] = [_reserve_extension(plan.emergency_release)]
    return slot


def _match(slot: Resource, plan: PlannedSlot, template: Mapping[str, Any], now: datetime,
           changes: SlotChanges) -> None:
    """A stored slot the plan still wants: refresh it if it is free and in the future."""
    if slot.get("status") != "free" or _start(slot) < now:
        changes.keep.append(slot["id"])
        return
    wanted = _refreshed(slot, plan, template)
    if wanted == slot:
        changes.keep.append(slot["id"])
    else:
        changes.update.append(wanted)


def _unmatched(slot: Resource, now: datetime, changes: SlotChanges) -> None:
    """A stored slot the plan no longer wants: drop it if free, report it if booked."""
    status, future = slot.get("status"), _start(slot) >= now
    if future and status == "free":
        changes.remove.append(slot["id"])
    elif future and status in HELD_STATUSES:
        changes.orphaned.append(slot["id"])
    else:
        changes.keep.append(slot["id"])


def _refreshed(slot: Resource, plan: PlannedSlot, template: Mapping[str, Any]) -> Resource:
    """The slot with the template's codes and the plan's emergency hold (or none)."""
    wanted = copy.deepcopy(slot)
    for key in TEMPLATE_KEYS:
        wanted.pop(key, None)
    wanted.update(_copied_codes(template))
    others = [e for e in wanted.pop("extension", []) if e.get("url") != SLOT_EMERGENCY_RESERVE_URL]
    if plan.emergency_release is not None:
        others.append(_reserve_extension(plan.emergency_release))
    if others:
        wanted["extension"] = others
    return wanted


def _group_by_time(existing: Sequence[Resource]) -> dict[TimeKey, list[Resource]]:
    """Stored slots that can fill a seat, by their UTC (start, end)."""
    groups: dict[TimeKey, list[Resource]] = defaultdict(list)
    for slot in existing:
        if slot.get("status") in _SEAT_ORDER and "id" in slot:
            groups[(_start(slot), _parse(slot["end"]))].append(slot)
    return groups


def _seat_rank(slot: Resource) -> tuple[int, str]:
    """Booked seats are kept before blocked ones, and those before free ones."""
    return _SEAT_ORDER[slot["status"]], slot["id"]


def _base_id(schedule_id: str, start: datetime) -> str:
    """`{schedule}-{yyyymmddhhmm}` in UTC; a long schedule id is shortened with a hash."""
    prefix = schedule_id
    if len(prefix) > _MAX_ID - 20:
        digest = hashlib.sha256(schedule_id.encode()).hexdigest()[:8]
        prefix = f"{schedule_id[:_MAX_ID - 29]}-{digest}"
    return f"{prefix}-{_utc(start):%Y%m%d%H%M}"


def _unused_ids(base: str, taken: set[str]) -> Iterator[str]:
    """The base id, then `-2`, `-3` ... skipping ids already in use."""
    candidates = (base if n == 1 else f"{base}-{n}" for n in range(1, 10_000))
    return (candidate for candidate in candidates if candidate not in taken)


def _copied_codes(template: Mapping[str, Any]) -> Resource:
    return {key: copy.deepcopy(template[key]) for key in TEMPLATE_KEYS if template.get(key)}


def _reserve_extension(release: datetime) -> Resource:
    return {"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": _instant(release)}


def _start(slot: Resource) -> datetime:
    return _parse(slot["start"])


def _parse(instant: str) -> datetime:
    return _utc(datetime.fromisoformat(instant))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _instant(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
