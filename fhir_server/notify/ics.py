"""iCalendar for appointments: the invite (or cancellation) attached to emails and the
calendar feeds, built with the `icalendar` library. Pure: no I/O, no clock reads.

Every VEVENT of one Appointment carries the same UID (`appointment_uid`), so a calendar
matches an update, a cancellation and a feed entry to the invite it already holds; SEQUENCE
is the Appointment's `meta.versionId`, which only grows, so a later version always wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any, Literal

from icalendar import Calendar, Event, vCalAddress, vText

from fhir_server import __version__
from fhir_server.fhir.instants import parse_instant

PRODID = f"-//fhir-scheduler//fhir-scheduler {__version__}//EN"
UID_DOMAIN = "fhir-scheduler"
BUSY = "Busy"

_TENTATIVE = frozenset({"proposed", "pending", "waitlist"})
_CANCELLED = frozenset({"cancelled", "noshow", "entered-in-error"})


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One appointment as a feed shows it; `summary` is "Busy" for busy-only feeds."""

    appointment: Mapping[str, Any]
    summary: str
    location: str | None = None
    description: str | None = None


def appointment_uid(appointment_id: str) -> str:
    """The UID every iCalendar object about this Appointment shares."""
    return f"appointment-{appointment_id}@{UID_DOMAIN}"


def appointment_invite(appointment: Mapping[str, Any], *, method: Literal["REQUEST", "CANCEL"],
                       summary: str, location: str | None, organizer: str,
                       attendee: str | None) -> bytes:
    """An iTIP REQUEST (invite or update) or CANCEL for one Appointment, as an .ics body.

    `organizer` and `attendee` are email addresses, optionally with a display name
    (`Clinic <no-reply@clinic.example>`)."""
    calendar = _calendar(method=method)
    status = "CANCELLED" if method == "CANCEL" else _status(appointment.get("status"))
    event = _event(appointment, summary=summary, location=location, status=status,
                   description=appointment.get("patientInstruction"))
    event.add("organizer", _address(organizer))
    if attendee:
        address = _address(attendee)
        address.params["ROLE"] = "REQ-PARTICIPANT"
        address.params["PARTSTAT"] = "ACCEPTED"
        event.add("attendee", address)
    calendar.add_component(event)
    return calendar.to_ical()


def calendar_feed(entries: Iterable[FeedEntry], *, name: str) -> bytes:
    """A subscribable calendar (no METHOD, as RFC 5545 feeds are published) of `entries`."""
    calendar = _calendar(method=None)
    calendar.add("x-wr-calname", name)
    for entry in entries:
        event = _event(entry.appointment, summary=entry.summary, location=entry.location,
                       status=_status(entry.appointment.get("status")),
                       description=entry.description)
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical()


def _calendar(*, method: str | None) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method is not None:
        calendar.add("method", method)
    return calendar


def _event(appointment: Mapping[str, Any], *, summary: str, location: str | None,
           status: str, description: str | None) -> Event:
    """The VEVENT fields every invite and feed entry shares."""
    meta = appointment.get("meta") or {}
    event = Event()
    event.add("uid", appointment_uid(str(appointment["id"])))
    event.add("sequence", _sequence(meta.get("versionId")))
    event.add("dtstamp", _utc(meta.get("lastUpdated")) or datetime.now(UTC))
    start, end = _utc(appointment.get("start")), _utc(appointment.get("end"))
    if start is not None:
        event.add("dtstart", start)
    if end is not None:
        event.add("dtend", end)
    event.add("summary", summary)
    event.add("status", status)
    if location:
        event.add("location", location)
    if isinstance(description, str) and description:
        event.add("description", description)
    return event


def _status(status: object) -> str:
    if status in _CANCELLED:
        return "CANCELLED"
    return "TENTATIVE" if status in _TENTATIVE else "CONFIRMED"


def _sequence(version_id: object) -> int:
    """SEQUENCE is `meta.versionId`: it grows with every change of the Appointment."""
    return int(version_id) if isinstance(version_id, str) and version_id.isdigit() else 0


def _utc(instant: object) -> datetime | None:
    return parse_instant(instant).astimezone(UTC) if isinstance(instant, str) else None


def _address(mailbox: str) -> vCalAddress:
    """`Name <addr>` or `addr` as a mailto: calendar address with its CN."""
    name, email = parseaddr(mailbox)
    address = vCalAddress(f"mailto:{email or mailbox}")
    if name:
        address.params["CN"] = vText(name)
    return address
