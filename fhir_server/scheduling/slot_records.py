"""Stored Schedules, Slots and Appointments read into what slot finding needs, in epoch minutes.

Pure: the service loads the JSON and passes it in with `now`. Readers are lenient where a
clinic's data may be untidy (a Slot without times offers nothing, a reference may be absolute)
and strict where guessing would be wrong (an instant without a zone is unreadable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.search.dates import epoch_ms
from fhir_server.scheduling.availability import (
    SLOT_EMERGENCY_RESERVE_URL,
    AvailabilityRules,
    rules_from_schedule,
)
from fhir_server.scheduling.find_params import Code, SlotQuery
from fhir_server.scheduling.finding import FreeSlot
from fhir_server.scheduling.intervals import Interval, to_minutes
from fhir_server.scheduling.slot_hold import parse_hold
from fhir_server.scheduling.state_machine import SLOT_TENTATIVE

Resource = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A Schedule's actors (`Type/id`), availability rules and the codes it serves."""

    id: str
    actors: tuple[str, ...]
    rules: AvailabilityRules | None
    service_types: tuple[Code, ...] = ()
    specialties: tuple[Code, ...] = ()

    @property
    def buffer_before(self) -> int:
        return self.rules.buffer_before if self.rules is not None else 0

    @property
    def buffer_after(self) -> int:
        return self.rules.buffer_after if self.rules is not None else 0


def parse_schedule(id: str, body: Resource) -> ScheduleRecord:
    """A Schedule's actors, codes and rules; raises FhirError if its rules are unreadable."""
    rules = rules_from_schedule(dict(body))
    actors = tuple(a for a in (reference_key(x.get("reference"))
                               for x in body.get("actor", ()) if isinstance(x, dict)) if a)
    return ScheduleRecord(id, actors, rules, codes_of(body.get("serviceType")),
                          codes_of(body.get("specialty")))


def serves(schedule: ScheduleRecord, request: SlotQuery) -> bool:
    """Whether the Schedule offers the requested service types and specialties."""
    return (accepts(schedule.service_types, request.service_types)
            and accepts(schedule.specialties, request.specialties))


def accepts(offered: Sequence[Code], wanted: Sequence[Code]) -> bool:
    """No codes on the resource serve anything; otherwise one must match a wanted code."""
    if not offered or not wanted:
        return True
    return any(code == want_code and (want_system is None or system == want_system)
               for system, code in offered for want_system, want_code in wanted)


def codes_of(concepts: object) -> tuple[Code, ...]:
    """Codings of a CodeableConcept or a list of them."""
    items = concepts if isinstance(concepts, list) else [concepts] if concepts else []
    return tuple((c.get("system"), c["code"]) for concept in items if isinstance(concept, dict)
                 for c in concept.get("coding", []) if isinstance(c, dict) and c.get("code"))


def free_slot(id: str, body: Resource, request: SlotQuery, now: datetime) -> FreeSlot | None:
    """The slot in minutes if it is free at `now` and offers the requested codes, else None."""
    if body.get("status") == SLOT_TENTATIVE and not hold_lapsed(body, now):
        return None
    if request.service_types or request.specialties or request.appointment_types:
        for key, wanted in (("serviceType", request.service_types),
                            ("specialty", request.specialties),
                            ("appointmentType", request.appointment_types)):
            if wanted and key in body and not accepts(codes_of(body[key]), wanted):
                return None
    schedule = reference_key((body.get("schedule") or {}).get("reference"))
    try:
        start, end = minute(body["start"]), minute_up(body["end"])
        release = None
        for extension in body.get("extension", ()):
            if (extension.get("url") == SLOT_EMERGENCY_RESERVE_URL
                    and "valueDateTime" in extension):
                release = minute_up(extension["valueDateTime"])
    except (KeyError, TypeError, ValueError):
        return None
    return FreeSlot(id, schedule.split("/", 1)[1] if schedule else "", start, end, release)


def hold_lapsed(slot: Resource, now: datetime) -> bool:
    """Whether the slot carries a hold that has lapsed at `now` (the rule of `slot_hold`)."""
    hold = parse_hold(slot)
    return hold is not None and hold.expired(now)


def busy_by_actor(appointments: Iterable[Resource],
                  actors: set[str]) -> dict[str, list[Interval]]:
    """The minutes each of `actors` is taken by the appointments (declined participants are not)."""
    busy: dict[str, list[Interval]] = {}
    for body in appointments:
        try:
            interval = (minute(body["start"]), minute_up(body["end"]))
        except (KeyError, TypeError, ValueError):
            continue
        for participant in body.get("participant", ()):
            actor = reference_key((participant.get("actor") or {}).get("reference"))
            if actor in actors and participant.get("status") != "declined":
                busy.setdefault(actor, []).append(interval)
    return busy


def reference_key(reference: object) -> str | None:
    """`Type/id` of a relative or absolute reference, or None."""
    if not isinstance(reference, str):
        return None
    if reference.count("/") == 1 and not reference.startswith("/"):
        return reference  # the usual relative `Type/id`
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 and parts[-2] and parts[-1] else None


@lru_cache(maxsize=1 << 16)
def minute(value: str) -> int:
    """Epoch minute of an instant string; cached, as slots share times (positional-only
    arguments keep the cache lookup cheap: it runs twice per slot and appointment)."""
    return to_minutes(_zoned_instant(value))


@lru_cache(maxsize=1 << 16)
def minute_up(value: str) -> int:
    """The first whole epoch minute at or after an instant string; cached like `minute`."""
    return ceil_minute(_zoned_instant(value))


def _zoned_instant(value: str) -> datetime:
    """Parse an instant that must carry a time zone."""
    if not isinstance(value, str):
        raise TypeError(f"instant expected, got {type(value).__name__}")
    moment = parse_instant(value)
    if moment.utcoffset() is None:
        raise ValueError("instant without zone")
    return moment


def ceil_minute(moment: datetime) -> int:
    """The first whole epoch minute at or after `moment`."""
    return -(-epoch_ms(moment) // 60_000)
