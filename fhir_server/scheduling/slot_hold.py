"""Slot claims as data: the hold extension, emergency reserves, overbooking, and who may claim.

A claimed Slot is `busy-tentative` and carries one hold extension naming the Appointment that
claimed it and when the claim lapses:

    {"url": SLOT_HOLD_URL, "extension": [
        {"url": "appointment", "valueReference": {"reference": "Appointment/<id>"}},
        {"url": "expires", "valueInstant": "2025-03-03T09:10:00Z"}]}

A lapsed hold is as good as free: anyone may claim the slot over it. `claim_decision` is the
one rule for whether a slot may be claimed; the services only read and write.

An Appointment booked to replace another (Argonaut `cancelled-appt-id`) carries
`{"url": REPLACES_URL, "valueReference": {"reference": "Appointment/<old id>"}}`, so recovery can
finish a replacement that crashed before the old appointment was cancelled.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from fhir_server.fhir.instants import format_instant, parse_instant
from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL
from fhir_server.scheduling.state_machine import SLOT_BUSY, SLOT_FREE, SLOT_TENTATIVE

SLOT_HOLD_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/slot-hold"
OVERBOOKING_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/overbooking"
REPLACES_URL = "http://fhir-scheduler.org/fhir/StructureDefinition/replaces"

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SlotHold:
    """Who holds a tentative slot (an Appointment id) and until when."""

    appointment_id: str | None
    expires: datetime | None

    def expired(self, now: datetime) -> bool:
        """Whether the hold has lapsed; a hold without a readable expiry never lapses by itself."""
        return self.expires is not None and self.expires <= now


class Claim(Enum):
    """How a slot may be claimed for an appointment."""

    TAKE = "take"          # free, or a lapsed hold: hold it for us
    REFRESH = "refresh"    # already held for this appointment: renew our hold
    OVERBOOK = "overbook"  # busy, and the caller gave an overbooking reason


class SlotUnavailable(Exception):
    """The slot cannot be claimed; the message says why (for the 409's diagnostics)."""


def parse_hold(slot: Mapping[str, Any]) -> SlotHold | None:
    """The slot's hold extension, or None if it carries none."""
    for extension in slot.get("extension", ()):
        if extension.get("url") != SLOT_HOLD_URL:
            continue
        appointment_id = expires = None
        for part in extension.get("extension", ()):
            if part.get("url") == "appointment":
                reference = (part.get("valueReference") or {}).get("reference", "")
                appointment_id = reference.rsplit("/", 1)[-1] or None
            elif part.get("url") == "expires" and isinstance(part.get("valueInstant"), str):
                expires = _instant_or_none(part["valueInstant"])
        return SlotHold(appointment_id, expires)
    return None


def hold_extension(appointment_id: str, expires: datetime) -> Resource:
    """The hold extension naming `Appointment/appointment_id`, lapsing at `expires`."""
    return {"url": SLOT_HOLD_URL, "extension": [
        {"url": "appointment", "valueReference": {"reference": f"Appointment/{appointment_id}"}},
        {"url": "expires", "valueInstant": format_instant(expires)}]}


def held(slot: Mapping[str, Any], appointment_id: str, expires: datetime) -> Resource:
    """A copy of the slot, busy-tentative and held for the appointment until `expires`."""
    result = without_hold(slot)
    result["status"] = SLOT_TENTATIVE
    result["extension"] = [*result.get("extension", []), hold_extension(appointment_id, expires)]
    return result


def without_hold(slot: Mapping[str, Any]) -> Resource:
    """A copy of the slot with its hold extension removed (status unchanged)."""
    result = copy.deepcopy(dict(slot))
    others = [e for e in result.pop("extension", []) if e.get("url") != SLOT_HOLD_URL]
    if others:
        result["extension"] = others
    return result


def with_status(slot: Mapping[str, Any], status: str) -> Resource:
    """A copy of the slot in `status`, without any hold (free and busy slots carry none)."""
    result = without_hold(slot)
    result["status"] = status
    if status == SLOT_FREE:
        result.pop("overbooked", None)
    return result


def overbooked(slot: Mapping[str, Any], reason: str) -> Resource:
    """A copy of the busy slot marked overbooked, with the reason added to its comment."""
    result = copy.deepcopy(dict(slot))
    result["overbooked"] = True
    note = f"Overbooked: {reason}"
    result["comment"] = f"{result['comment']}; {note}" if result.get("comment") else note
    return result


def emergency_reserved_until(slot: Mapping[str, Any], now: datetime) -> datetime | None:
    """When the slot's emergency reserve is released, if that is still in the future."""
    for extension in slot.get("extension", ()):
        if extension.get("url") == SLOT_EMERGENCY_RESERVE_URL:
            value = extension.get("valueDateTime")
            release = _instant_or_none(value) if isinstance(value, str) else None
            if release is not None and release > now:
                return release
    return None


def overbooking_reason(appointment: Mapping[str, Any]) -> str | None:
    """The overbooking override an Appointment carries (its `overbooking` extension)."""
    for extension in appointment.get("extension", ()):
        if extension.get("url") == OVERBOOKING_URL and extension.get("valueString"):
            return str(extension["valueString"])
    return None


def with_overbooking_reason(appointment: Mapping[str, Any], reason: str) -> Resource:
    """A copy of the Appointment recording the overbooking reason (once)."""
    result = copy.deepcopy(dict(appointment))
    if overbooking_reason(result) is None:
        result["extension"] = [*result.get("extension", []),
                               {"url": OVERBOOKING_URL, "valueString": reason}]
    return result


def replaced_id(appointment: Mapping[str, Any]) -> str | None:
    """The id of the Appointment this one replaces (its `replaces` extension), if any."""
    for extension in appointment.get("extension", ()):
        if extension.get("url") == REPLACES_URL:
            reference = (extension.get("valueReference") or {}).get("reference")
            if isinstance(reference, str) and reference.rsplit("/", 1)[-1]:
                return reference.rsplit("/", 1)[-1]
    return None


def with_replaces(appointment: Mapping[str, Any], old_id: str) -> Resource:
    """A copy of the Appointment marked as replacing `Appointment/old_id` (and nothing else)."""
    result = copy.deepcopy(dict(appointment))
    others = [e for e in result.get("extension", []) if e.get("url") != REPLACES_URL]
    result["extension"] = [*others, {"url": REPLACES_URL,
                                     "valueReference": {"reference": f"Appointment/{old_id}"}}]
    return result


def claim_decision(slot: Mapping[str, Any], *, appointment_id: str, now: datetime,
                   may_use_emergency: bool = False, overbook: bool = False) -> Claim:
    """How `appointment_id` may claim the slot, or raise SlotUnavailable saying why not."""
    status = slot.get("status")
    hold = parse_hold(slot) if status == SLOT_TENTATIVE else None
    if hold is not None and hold.appointment_id == appointment_id:
        return Claim.REFRESH
    reserved = emergency_reserved_until(slot, now)
    if reserved is not None and not may_use_emergency:
        raise SlotUnavailable(f"it is reserved for emergencies until {format_instant(reserved)}")
    if status == SLOT_FREE or (hold is not None and hold.expired(now)):
        return Claim.TAKE
    if status == SLOT_BUSY and overbook:
        return Claim.OVERBOOK
    raise SlotUnavailable(f"it is {status}")


def slot_ids(appointment: Mapping[str, Any]) -> list[str]:
    """The ids of the Slots an Appointment references, sorted: the order every claim uses."""
    ids = {ref["reference"].rsplit("/", 1)[-1] for ref in appointment.get("slot", ())
           if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str)}
    return sorted(ids)


def _instant_or_none(value: str) -> datetime | None:
    """The instant, or None if unreadable; a value without an offset is taken as UTC."""
    try:
        moment = parse_instant(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
