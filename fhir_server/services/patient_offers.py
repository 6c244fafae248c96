"""The times a patient may pick from a signed link: to move an appointment, or to book a proposal.

Offers come from `find_slots`, the code path of `$find-slots`, with a patient's rights (no
emergency-reserved slots). The actors are the appointment's own participants that keep an
active Schedule (practitioners, roles, locations, devices), its service types narrow the
slots, and the patient's other appointments are busy time. A posted choice counts only if a
fresh find still offers exactly it, so posted times and slot ids are never trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.search.dates import parse_date_range
from fhir_server.scheduling.find_params import ACTOR_ORDER, MAX_WINDOW, Code, SlotQuery
from fhir_server.services.appointment_views import AppointmentView, schedule_zone
from fhir_server.services.context import FhirContext
from fhir_server.services.find_slots import find_slots
from fhir_server.services.search import find_matches
from fhir_server.services.slot_claims import body_of
from fhir_server.store.protocol import StoredResource

Resource = dict[str, Any]
Window = tuple[datetime, datetime]

OFFERS_SHOWN = 12
FIND_LIMIT = 200  # a choice is checked against this many fresh offers, not just the first page
MOVE_HORIZON = timedelta(days=30)
SCHEDULE_LIMIT = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Offer:
    """A bookable [start, end) in UTC, the Slots it uses, and their Schedule's time zone."""

    start: datetime
    end: datetime
    slot_ids: tuple[str, ...]
    zone: ZoneInfo

    @property
    def form_start(self) -> str:
        """The start as the page posts it back, compared as text: nothing posted is parsed."""
        return instant_text(self.start)


@dataclass(frozen=True, slots=True)
class Choice:
    """What a patient's form posted: an offer's start and slot ids, still to be checked."""

    start: str
    slot_ids: frozenset[str]


def instant_text(moment: datetime) -> str:
    """`2030-03-11T14:00:00Z`, as `$find-slots` writes proposal times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def chosen(offers: Iterable[Offer], choice: Choice) -> Offer | None:
    """The offer the patient picked, if it is still on offer exactly as posted."""
    return next((o for o in offers if o.form_start == choice.start
                 and frozenset(o.slot_ids) == choice.slot_ids), None)


async def move_offers(ctx: FhirContext, view: AppointmentView, *,
                      now: datetime) -> list[Offer]:
    """Free times for the appointment's actors and service, as long as it is, from now
    (after each Schedule's minimum notice) to `MOVE_HORIZON`."""
    return await _offers(ctx, view, [(now, now + MOVE_HORIZON)], _duration(view.appointment),
                         now=now)


async def proposal_offers(ctx: FhirContext, view: AppointmentView, *,
                          now: datetime) -> list[Offer]:
    """Free times inside the proposal's `requestedPeriod`s (from now, at most `MAX_WINDOW`)."""
    windows = _requested_windows(view.appointment, now=now)
    minutes = view.appointment.get("minutesDuration")
    return await _offers(ctx, view, windows, minutes if isinstance(minutes, int) else None,
                         now=now)


def _requested_windows(proposal: Mapping[str, Any], *, now: datetime) -> list[Window]:
    """The proposal's requested periods cut to [now, now + MAX_WINDOW); unreadable ones skipped."""
    windows = []
    for period in proposal.get("requestedPeriod") or ():
        try:
            low = _bound(period.get("start"), upper=False) or now
            high = _bound(period.get("end"), upper=True) or now + MAX_WINDOW
        except InvalidRequest:
            continue
        window = (max(low, now), min(high, now + MAX_WINDOW))
        if window[0] < window[1]:
            windows.append(window)
    return windows


async def _offers(ctx: FhirContext, view: AppointmentView, windows: Sequence[Window],
                  duration: int | None, *, now: datetime) -> list[Offer]:
    """One find over the windows' span, keeping the times that lie inside a window."""
    actors = await _scheduled_actors(ctx, view.appointment, now=now)
    if not actors or not windows:
        return []
    query = SlotQuery(
        start=min(w[0] for w in windows), end=max(w[1] for w in windows),
        service_types=_service_types(view.appointment), actors=_groups(actors),
        patient=f"Patient/{view.patients[0]}" if view.patients else None,
        duration=duration, count=FIND_LIMIT)
    result = await find_slots(ctx, query, now=now, may_use_emergency=False)
    zones = await _zones(ctx, result.slots)
    offers = []
    for found in result.found:
        if not any(low <= found.start and found.end <= high for low, high in windows):
            continue
        ids = tuple(dict.fromkeys(i for _, slot_ids in found.participants for i in slot_ids))
        offers.append(Offer(found.start, found.end, ids, zones.get(next(iter(ids), ""), _UTC)))
    return offers


async def _scheduled_actors(ctx: FhirContext, appointment: Resource, *,
                            now: datetime) -> list[str]:
    """The participants that keep an active Schedule: an actor without one offers no time and
    would make every find empty (a room that is simply booked along, for instance)."""
    actors = [ref for p in appointment.get("participant") or ()
              if (ref := str((p.get("actor") or {}).get("reference", ""))).split("/")[0]
              in ACTOR_ORDER and p.get("status") != "declined"]
    if not actors:
        return []
    schedules = await find_matches(ctx, "Schedule", [("actor", ",".join(actors)),
                                                     ("active:not", "false")],
                                   now=now, limit=SCHEDULE_LIMIT)
    owners = {a.get("reference") for s in schedules for a in body_of(s).get("actor") or ()}
    return list(dict.fromkeys(a for a in actors if a in owners))


def _groups(actors: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each actor type is one group (all must attend), in `$find-slots`' order."""
    by_type: dict[str, list[str]] = {}
    for actor in actors:
        by_type.setdefault(actor.split("/")[0], []).append(actor)
    return tuple((kind, tuple(by_type[kind])) for kind in ACTOR_ORDER if kind in by_type)


def _service_types(appointment: Resource) -> tuple[Code, ...]:
    return tuple(dict.fromkeys((c.get("system"), c["code"])
                               for concept in appointment.get("serviceType") or ()
                               for c in concept.get("coding") or () if c.get("code")))


def _duration(appointment: Resource) -> int | None:
    """The appointment's length in minutes: `minutesDuration`, else end - start."""
    minutes = appointment.get("minutesDuration")
    if isinstance(minutes, int) and minutes > 0:
        return minutes
    start, end = appointment.get("start"), appointment.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    length = int((parse_instant(end) - parse_instant(start)).total_seconds() // 60)
    return length if length > 0 else None


async def _zones(ctx: FhirContext, slots: Sequence[StoredResource]) -> dict[str, ZoneInfo]:
    """Each offered Slot's Schedule time zone, with one read of those Schedules."""
    schedule_of = {s.id: str((body_of(s).get("schedule") or {}).get("reference", ""))
                   .rsplit("/", 1)[-1] for s in slots}
    ids = sorted({i for i in schedule_of.values() if i})
    if not ids:
        return {}
    schedules = {r.id: body_of(r) for r in await ctx.store.read_many("Schedule", ids)}
    return {slot: schedule_zone(schedules.get(schedule)) for slot, schedule in schedule_of.items()}


def _bound(value: object, *, upper: bool) -> datetime | None:
    """A Period bound as an instant: a date-only end means the end of that day."""
    if not isinstance(value, str):
        return None
    low, high = parse_date_range(value)
    return _EPOCH + timedelta(milliseconds=high if upper and "T" not in value else low)
