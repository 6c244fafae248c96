"""The request's actors as options (OR) per group (AND), and the finder's input built from them.

Pure: takes Schedules, Slots and busy time already read (`slot_records`) and `now`.
Minimum notice and booking horizon come from each Schedule's rules: the lead group's slots
must start inside them; other groups' slots are cut to start no earlier than their notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from fhir_server.scheduling.availability import DEFAULT_SLOT_MINUTES, bookable_window
from fhir_server.scheduling.find_params import Code
from fhir_server.scheduling.finding import ActorGroup, ActorSlots, FreeSlot
from fhir_server.scheduling.intervals import Interval, to_minutes
from fhir_server.scheduling.slot_records import ScheduleRecord, ceil_minute

Groups = list[tuple[str, list["ActorOption"]]]
"""Each group's type and its options, most preferred first; the first group leads."""


@dataclass(slots=True)
class ActorOption:
    """One OR choice: an actor (or a whole Schedule) and the schedules whose slots it offers."""

    key: str
    actors: tuple[str, ...]
    schedules: list[ScheduleRecord] = field(default_factory=list)


def actor_options(groups: Mapping[str, Sequence[str]],
                  schedules: Sequence[ScheduleRecord]) -> Groups:
    """Each group's options in preference order; without groups, each Schedule is an option."""
    if not groups:
        return [("Schedule", [_schedule_option(s) for s in schedules])] if schedules else []
    by_actor: dict[str, list[ScheduleRecord]] = {}
    for schedule in schedules:
        for actor in schedule.actors:
            by_actor.setdefault(actor, []).append(schedule)
    by_id = {f"Schedule/{s.id}": s for s in schedules}
    options: Groups = []
    for kind, refs in groups.items():
        if kind == "Schedule":
            group = [_schedule_option(by_id[r]) for r in refs if r in by_id]
        else:
            group = [ActorOption(r, (r,), by_actor.get(r, [])) for r in refs]
        options.append((kind, group))
    return options


def _schedule_option(schedule: ScheduleRecord) -> ActorOption:
    return ActorOption(f"Schedule/{schedule.id}", schedule.actors, [schedule])


def default_duration(options: Groups, services: Sequence[Code]) -> int:
    """The first matched schedule's slot length for the service (its default otherwise)."""
    for _, group in options[:1]:
        for option in group:
            for schedule in option.schedules:
                if schedule.rules is not None:
                    return schedule.rules.slot_minutes_for(services)
                return DEFAULT_SLOT_MINUTES
    return DEFAULT_SLOT_MINUTES


def actor_group(kind: str, group: Sequence[ActorOption],
                slots: Mapping[str, Sequence[FreeSlot]],
                busy: Mapping[str, Sequence[Interval]], *, now: datetime,
                lead: bool) -> ActorGroup:
    """The finder's view of one group: each option's usable slots, busy time and buffers."""
    return ActorGroup(kind, tuple(_actor_slots(kind, o, slots, busy, now=now, lead=lead)
                                  for o in group))


def _actor_slots(kind: str, option: ActorOption, slots: Mapping[str, Sequence[FreeSlot]],
                 busy: Mapping[str, Sequence[Interval]], *, now: datetime,
                 lead: bool) -> ActorSlots:
    """One option's usable slots, busy time and buffers (the largest of its schedules')."""
    free: list[FreeSlot] = []
    for schedule in option.schedules:
        low, high = _bookable(schedule, now)
        for slot in slots.get(schedule.id, ()):
            if lead:
                if slot.start < low or (high is not None and slot.start > high):
                    continue
                free.append(slot)
            elif slot.start >= low:
                free.append(slot)
            elif low < slot.end:  # a visit may start mid-slot, never before notice
                free.append(FreeSlot(slot.id, schedule.id, low, slot.end,
                                     slot.emergency_release))
    return ActorSlots(
        actor=option.key, actor_type=kind, slots=tuple(free),
        busy=tuple(i for actor in option.actors for i in busy.get(actor, ())),
        buffer_before=max((s.buffer_before for s in option.schedules), default=0),
        buffer_after=max((s.buffer_after for s in option.schedules), default=0))


def _bookable(schedule: ScheduleRecord, now: datetime) -> tuple[int, int | None]:
    """Earliest and latest start minute the schedule's notice and horizon allow."""
    if schedule.rules is None:
        return -(2**62), None
    earliest, latest = bookable_window(schedule.rules, now)
    return ceil_minute(earliest), None if latest is None else to_minutes(latest)
