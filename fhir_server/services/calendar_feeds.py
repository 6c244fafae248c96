"""The appointments in a practitioner's or patient's calendar feed: booked, pending and
arrived ones from a month back on, soonest first. A practitioner's feed is shared (with
family, an assistant, a personal calendar), so it is busy-only: it carries no patient data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir_server.fhir.instants import format_instant
from fhir_server.scheduling.state_machine import ARRIVED, BOOKED, PENDING
from fhir_server.services import resources
from fhir_server.services.appointment_views import AppointmentView, describe
from fhir_server.services.context import FhirContext
from fhir_server.services.search import find_matches
from fhir_server.services.slot_claims import body_of

FEED_STATUSES = (BOOKED, PENDING, ARRIVED)
FEED_HISTORY = timedelta(days=30)
FEED_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class OwnerFeed:
    """Whose feed it is, and what it shows."""

    owner: str
    busy_only: bool
    appointments: list[AppointmentView]


async def owner_feed(ctx: FhirContext, owner: str, *, now: datetime) -> OwnerFeed:
    """The feed of `Practitioner/x` or `Patient/y` (404/410 when the owner is not known)."""
    owner_type, _, owner_id = owner.partition("/")
    await resources.read(ctx, owner_type, owner_id)
    matches = await find_matches(ctx, "Appointment", [
        ("actor", owner), ("status", ",".join(FEED_STATUSES)),
        ("date", f"ge{format_instant(now - FEED_HISTORY)}"), ("_sort", "date")],
        now=now, limit=FEED_LIMIT)
    busy_only = owner_type == "Practitioner"
    bodies = [body_of(m) for m in matches]
    return OwnerFeed(owner, busy_only,
                     await describe(ctx, [_when_only(b) for b in bodies] if busy_only else bodies))


def _when_only(appointment: dict) -> dict:
    """Only when it is: no title, people or place, so nothing about the patient leaks."""
    return {k: appointment[k] for k in ("id", "meta", "status", "start", "end")
            if k in appointment}
