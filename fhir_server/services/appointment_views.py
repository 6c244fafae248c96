"""Appointments as a patient reads them (what, with whom, where, in the clinic's time zone),
for link pages, SMS replies and calendar feeds; a batch costs one read per referenced type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.instants import parse_instant
from fhir_server.scheduling.availability_parse import parse_time_zone
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AppointmentView:
    """What a patient needs to recognise an appointment; times are UTC, `zone` the clinic's."""

    appointment: Resource
    title: str
    start: datetime | None
    end: datetime | None
    zone: ZoneInfo
    practitioners: tuple[str, ...]
    location: str | None
    patients: tuple[str, ...]

    @property
    def id(self) -> str:
        return str(self.appointment["id"])

    @property
    def status(self) -> str:
        return str(self.appointment.get("status"))

    @property
    def local_start(self) -> datetime | None:
        return self.start.astimezone(self.zone) if self.start else None


async def describe(ctx: FhirContext, appointments: Sequence[Resource]) -> list[AppointmentView]:
    """Views of `appointments`, resolving practitioners, locations and time zones in bulk."""
    names = await _read_all(ctx, "Practitioner", _actors(appointments, "Practitioner"))
    locations = await _read_all(ctx, "Location", _actors(appointments, "Location"))
    slots = await _read_all(ctx, "Slot", {s for a in appointments for s in _slot_ids(a)[:1]})
    schedules = await _read_all(ctx, "Schedule", {_ref_id(s.get("schedule")) or ""
                                                  for s in slots.values()})
    return [_view(a, names, locations, _zone(a, slots, schedules)) for a in appointments]


def _view(appointment: Resource, practitioners: Mapping[str, Resource],
          locations: Mapping[str, Resource], zone: ZoneInfo) -> AppointmentView:
    people, places, patients = [], [], []
    for participant in appointment.get("participant") or ():
        actor = participant.get("actor") or {}
        kind, _, id = str(actor.get("reference", "")).partition("/")
        if kind == "Practitioner":
            people.append(actor.get("display") or _person_name(practitioners.get(id)) or id)
        elif kind == "Location":
            places.append(actor.get("display") or _place(locations.get(id)) or id)
        elif kind == "Patient":
            patients.append(id)
    return AppointmentView(appointment, _title(appointment), _instant(appointment.get("start")),
                           _instant(appointment.get("end")), zone, tuple(people),
                           places[0] if places else None, tuple(patients))


def _title(appointment: Resource) -> str:
    """The appointment's own description, else its service type, else "Appointment"."""
    if appointment.get("description"):
        return str(appointment["description"])
    for concept in appointment.get("serviceType") or ():
        text = concept.get("text") or next(
            (c.get("display") for c in concept.get("coding") or () if c.get("display")), None)
        if text:
            return str(text)
    return "Appointment"


def _person_name(person: Resource | None) -> str | None:
    for name in (person or {}).get("name") or ():
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", ()), *name.get("given", ()), name.get("family", "")]
        return " ".join(p for p in parts if p) or None
    return None


def _place(location: Resource | None) -> str | None:
    """`Name, street, city` of a Location."""
    if not location:
        return None
    address = location.get("address") or {}
    parts = [location.get("name"), *address.get("line", ()), address.get("city")]
    return ", ".join(str(p) for p in parts if p) or None


def _zone(appointment: Resource, slots: Mapping[str, Resource],
          schedules: Mapping[str, Resource]) -> ZoneInfo:
    """The time zone of the Schedule of the appointment's first slot; UTC without one."""
    slot = slots.get(next(iter(_slot_ids(appointment)), ""))
    return schedule_zone(schedules.get(_ref_id((slot or {}).get("schedule")) or ""))


def schedule_zone(schedule: Resource | None) -> ZoneInfo:
    """A Schedule's time zone; UTC without a (readable) one, so a page still renders."""
    try:
        zone = parse_time_zone(schedule) if schedule else None
    except FhirError:
        zone = None
    return zone or ZoneInfo("UTC")


def _actors(appointments: Sequence[Resource], kind: str) -> set[str]:
    return {ref.split("/", 1)[1] for a in appointments for p in a.get("participant") or ()
            if (ref := str((p.get("actor") or {}).get("reference", ""))).startswith(kind + "/")}


def _slot_ids(appointment: Resource) -> list[str]:
    return [id for s in appointment.get("slot") or () if (id := _ref_id(s))]


def _ref_id(reference: object) -> str | None:
    value = reference.get("reference") if isinstance(reference, Mapping) else None
    return value.rsplit("/", 1)[-1] if isinstance(value, str) and "/" in value else None


def _instant(value: object) -> datetime | None:
    return parse_instant(value).astimezone(UTC) if isinstance(value, str) else None


async def _read_all(ctx: FhirContext, resource_type: str, ids: set[str]) -> dict[str, Resource]:
    ids.discard("")
    if not ids:
        return {}
    return {r.id: body_of(r) for r in await ctx.store.read_many(resource_type, sorted(ids))}
