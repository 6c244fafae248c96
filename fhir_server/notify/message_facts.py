"""What a patient message says, gathered through `Records` (the services layer, directory
resources cached): the appointment, who and where, how to prepare, whom to call, and the
clinic's time zone.

Sources, in order of preference:
- place: the Appointment's Location participant; its address, else its `partOf` parent's
  (a room inside a building); directions are `Location.description`.
- preparation: the HealthcareService participant, else the one offering the Appointment's
  service type at its location; `extraDetails` (markdown, the service's preparation guide),
  else `comment`.
- contact: the HealthcareService's telecom, else its Organization's (`providedBy`, the
  Location's `managingOrganization`, or the Patient's `managingOrganization`).
- time zone: the Appointment's R4 `timezone` extension, else that of the Schedule of its
  first Slot, else of a Schedule of one of its participants, else UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_server.fhir.instants import parse_instant
from fhir_server.notify.records import Records
from fhir_server.scheduling.availability import schedule_time_zone

R4_TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
PARENT_HOPS = 3  # room → floor → building is as deep as clinics go

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Place:
    """Where to go: the location's name (with its building), postal address and directions."""

    name: str
    address: str | None
    directions: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    """Whom the patient calls or writes to about the appointment."""

    phone: str | None
    email: str | None


@dataclass(frozen=True, slots=True)
class Visit:
    """The appointment as the patient sees it; times are local to the clinic's zone."""

    id: str
    resource: Resource
    start: datetime | None
    end: datetime | None
    service: str | None
    practitioner: str | None
    instructions: str | None


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """Everything the templates may show; None where the records say nothing."""

    patient_name: str
    clinic: str | None
    visit: Visit | None
    requested_start: datetime | None  # a proposal's requestedPeriod, local
    requested_end: datetime | None
    place: Place | None
    preparation: str | None
    contact: Contact
    note: str | None  # payload contentString written by staff


async def gather_facts(records: Records, request: Mapping[str, Any]) -> MessageFacts:
    """Read what a message about `request` (a CommunicationRequest) needs to say."""
    patient = await _resolve(records, request.get("subject"), "Patient")
    appointment = await _first_about(records, request, "Appointment")
    actors = _participants(appointment)
    location = await _resolve(records, _first(actors, "Location"), "Location")
    service = await _healthcare_service(records, appointment, actors, location)
    organization = await _organization(records, service, location, patient, request)
    zone = await appointment_time_zone(records, appointment) if appointment else UTC
    requested = _list(appointment.get("requestedPeriod"))[:1] if appointment else []
    period = requested[0] if requested and isinstance(requested[0], Mapping) else {}
    return MessageFacts(
        patient_name=human_name(patient) or "",
        clinic=_text(organization.get("name")) if organization else None,
        visit=await _visit(records, appointment, actors, service, zone) if appointment
        else None,
        requested_start=_local(period.get("start"), zone),
        requested_end=_local(period.get("end"), zone),
        place=await _place(records, location) if location else None,
        preparation=_preparation(service),
        contact=Contact(phone=_telecom(service, organization, "phone"),
                        email=_telecom(service, organization, "email")),
        note=_note(request),
    )


def human_name(resource: Mapping[str, Any] | None) -> str | None:
    """`HumanName.text`, else prefix, given and family names (official or usual first)."""
    names = [n for n in _list((resource or {}).get("name")) if isinstance(n, Mapping)]
    names.sort(key=lambda name: name.get("use") not in ("official", "usual"))
    for name in names:
        if _text(name.get("text")):
            return str(name["text"])
        parts = [*_list(name.get("prefix")), *_list(name.get("given")), name.get("family")]
        words = [part for part in parts if _text(part)]
        if words:
            return " ".join(words)
    return None


async def _visit(records: Records, appointment: Resource, actors: Sequence[Mapping[str, Any]],
                 service: Resource | None, zone: tzinfo) -> Visit:
    reference = _first(actors, "Practitioner")
    practitioner = await _resolve(records, reference, "Practitioner")
    types = [c for c in _list(appointment.get("serviceType")) if isinstance(c, Mapping)]
    return Visit(
        id=str(appointment["id"]),
        resource=appointment,
        start=_local(appointment.get("start"), zone),
        end=_local(appointment.get("end"), zone),
        service=(_concept_text(types[0]) if types else None)
        or (_text(service.get("name")) if service else None),
        practitioner=human_name(practitioner) or _text((reference or {}).get("display")),
        instructions=_text(appointment.get("patientInstruction")),
    )


async def _place(records: Records, location: Resource) -> Place:
    names, address = [_text(location.get("name"))], _postal(location.get("address"))
    current = location
    for _ in range(PARENT_HOPS):
        parent = await _resolve(records, current.get("partOf"), "Location")
        if parent is None:
            break
        names.append(_text(parent.get("name")))
        address = address or _postal(parent.get("address"))
        current = parent
    return Place(name=", ".join(dict.fromkeys(n for n in names if n)), address=address,
                 directions=_text(location.get("description")))


async def _healthcare_service(records: Records, appointment: Resource | None,
                              actors: Sequence[Mapping[str, Any]],
                              location: Resource | None) -> Resource | None:
    named = await _resolve(records, _first(actors, "HealthcareService"), "HealthcareService")
    if named is not None or appointment is None:
        return named
    codings = [c for concept in _list(appointment.get("serviceType"))
               if isinstance(concept, Mapping) for c in _list(concept.get("coding"))
               if isinstance(c, Mapping) and c.get("code")]
    for coding in codings[:1]:
        params = [("service-type", f"{coding.get('system', '')}|{coding['code']}"),
                  ("active", "true")]
        if location is not None:
            params.append(("location", f"Location/{location['id']}"))
        found = await records.search("HealthcareService", params, limit=1)
        if found:
            return found[0]
    return None


async def _organization(records: Records, service: Resource | None, location: Resource | None,
                        patient: Resource | None, request: Mapping[str, Any]) -> Resource | None:
    candidates = [(service or {}).get("providedBy"),
                  (location or {}).get("managingOrganization"),
                  request.get("sender"), (patient or {}).get("managingOrganization")]
    for reference in candidates:
        organization = await _resolve(records, reference, "Organization")
        if organization is not None:
            return organization
    return None


async def appointment_time_zone(records: Records, appointment: Mapping[str, Any]) -> tzinfo:
    """The clinic's zone for this appointment (see the module docstring for the sources)."""
    own = _extension_zone(appointment)
    if own is not None:
        return own
    slots = [s for s in _list(appointment.get("slot")) if isinstance(s, Mapping)]
    slot = await _resolve(records, slots[0] if slots else None, "Slot")
    schedule = await _resolve(records, (slot or {}).get("schedule"), "Schedule")
    if schedule is not None and (zone := schedule_time_zone(schedule)) is not None:
        return zone
    for actor in _participants(appointment):
        reference = actor.get("reference")
        if not isinstance(reference, str):
            continue
        for schedule in await records.search("Schedule", [("actor", reference)], limit=5):
            if (zone := schedule_time_zone(schedule)) is not None:
                return zone
    return UTC


async def _first_about(records: Records, request: Mapping[str, Any],
                       resource_type: str) -> Resource | None:
    for reference in _list(request.get("about")):
        if _reference_id(reference, resource_type) is not None:
            return await _resolve(records, reference, resource_type)
    return None


async def _resolve(records: Records, reference: Any, resource_type: str) -> Resource | None:
    """The resource a reference points to; None when absent, deleted or elsewhere."""
    id = _reference_id(reference, resource_type, base_url=records.ctx.base_url)
    return await records.read(resource_type, id) if id is not None else None


def _reference_id(reference: Any, resource_type: str, *, base_url: str = "") -> str | None:
    if not isinstance(reference, Mapping) or not isinstance(reference.get("reference"), str):
        return None
    value = reference["reference"].removeprefix(f"{base_url}/") if base_url else \
        reference["reference"]
    kind, _, id = value.partition("/")
    return id if kind == resource_type and id and "/" not in id else None


def _participants(appointment: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [p["actor"] for p in _list((appointment or {}).get("participant"))
            if isinstance(p, Mapping) and isinstance(p.get("actor"), Mapping)
            and p.get("status") != "declined"]


def _first(actors: Sequence[Mapping[str, Any]], resource_type: str) -> Mapping[str, Any] | None:
    return next((actor for actor in actors
                 if _reference_id(actor, resource_type) is not None), None)


def _preparation(service: Resource | None) -> str | None:
    if service is None:
        return None
    return _text(service.get("extraDetails")) or _text(service.get("comment"))


def _telecom(service: Resource | None, organization: Resource | None,
             system: str) -> str | None:
    for owner in (service, organization):
        points = [p for p in _list((owner or {}).get("telecom")) if isinstance(p, Mapping)
                  and p.get("system") == system and _text(p.get("value"))
                  and p.get("use") != "old"]
        if points:
            points.sort(key=lambda p: p["rank"] if isinstance(p.get("rank"), int) else 1 << 31)
            return str(points[0]["value"])
    return None


def _note(request: Mapping[str, Any]) -> str | None:
    texts = [_text(p.get("contentString")) for p in _list(request.get("payload"))
             if isinstance(p, Mapping)]
    return "\n\n".join(t for t in texts if t) or None


def _postal(addresses: Any) -> str | None:
    """One line of a postal address (`Location.address` is one, elsewhere a list)."""
    for address in [addresses] if isinstance(addresses, Mapping) else _list(addresses):
        if not isinstance(address, Mapping) or address.get("use") == "old":
            continue
        if _text(address.get("text")):
            return str(address["text"])
        region = " ".join(p for p in (address.get("state"), address.get("postalCode")) if p)
        parts = [*_list(address.get("line")), address.get("city"), region or None]
        text = ", ".join(p for p in parts if _text(p))
        if text:
            return text
    return None


def _extension_zone(resource: Mapping[str, Any]) -> tzinfo | None:
    for extension in _list(resource.get("extension")):
        if isinstance(extension, Mapping) and extension.get("url") == R4_TIMEZONE_URL:
            try:
                return ZoneInfo(extension.get("valueCode", ""))
            except (ZoneInfoNotFoundError, ValueError):
                return None
    return None


def _concept_text(concept: Mapping[str, Any]) -> str | None:
    displays = [c.get("display") for c in _list(concept.get("coding")) if isinstance(c, Mapping)]
    return _text(concept.get("text")) or next((d for d in displays if _text(d)), None)


def _local(value: Any, zone: tzinfo) -> datetime | None:
    """An instant in `zone`; a date or a dateTime without offset is read as local already."""
    if not isinstance(value, str):
        return None
    moment = parse_instant(value)
    return moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
