"""What a patient's SMS reply or one-click link does, through the same rules as the API.

Confirming records an AppointmentResponse `accepted` by the patient, so the Appointment
moves on exactly as when the patient's app posts one (pending → booked once every required
participant accepted). Cancelling moves the Appointment to cancelled through the state
machine (`booking.change_status`, which frees its slots), with the cancellation reason
"Patient: Canceled via automated reminder system". Neither touches an appointment that
has started or is already final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fhir_server.fhir.errors import BusinessRuleViolation
from fhir_server.fhir.instants import format_instant
from fhir_server.scheduling.state_machine import BOOKED, CANCELLED, FINAL_STATES, PENDING
from fhir_server.services import booking, resources
from fhir_server.services.appointment_views import AppointmentView, describe
from fhir_server.services.context import FhirContext
from fhir_server.services.search import find_matches
from fhir_server.services.slot_claims import body_of

Resource = dict[str, Any]

CANCELLATION_REASON_SYSTEM = \
    "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
PHONE_MATCH_LIMIT = 20  # patients sharing one number (a family); more is not a person's phone


class Outcome(StrEnum):
    """What a reply did; the caller words the answer from it."""

    CONFIRMED = "confirmed"  # the appointment is booked and the patient accepted
    ACKNOWLEDGED = "acknowledged"  # accepted, but the clinic has yet to confirm (pending)
    CANCELLED = "cancelled"
    ALREADY_CANCELLED = "already-cancelled"
    CLOSED = "closed"  # started, finished or otherwise final: nothing can change
    RESCHEDULED = "rescheduled"  # moved to a time the patient picked
    BOOKED = "booked"  # a proposal booked at a time the patient picked
    ALREADY_BOOKED = "already-booked"  # the proposal was booked before this link was used


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome and the appointment as it stands afterwards."""

    outcome: Outcome
    view: AppointmentView


@dataclass(frozen=True, slots=True)
class Sender:
    """The patients an inbound number belongs to, their language, and their next visit."""

    patient_ids: tuple[str, ...]
    language: str | None
    upcoming: AppointmentView | None


async def appointment_view(ctx: FhirContext, appointment_id: str) -> AppointmentView:
    """The appointment a link names, as the patient reads it (404/410 if it is gone)."""
    [view] = await describe(ctx, [body_of(await resources.read(ctx, "Appointment",
                                                                appointment_id))])
    return view


async def sender_of(ctx: FhirContext, phone: str, *, now: datetime) -> Sender | None:
    """The patients whose phone is `phone` and their soonest booked or pending appointment;
    None for an unknown number."""
    patients = await find_matches(ctx, "Patient", [("phone", ",".join(phone_variants(phone))),
                                                   ("active:not", "false")],
                                  now=now, limit=PHONE_MATCH_LIMIT)
    if not patients:
        return None
    ids = tuple(p.id for p in patients)
    upcoming = await find_matches(ctx, "Appointment", [
        ("patient", ",".join(f"Patient/{id}" for id in ids)),
        ("status", f"{BOOKED},{PENDING}"), ("date", f"ge{format_instant(now)}"),
        ("_sort", "date")], now=now, limit=1)
    views = await describe(ctx, [body_of(a) for a in upcoming])
    return Sender(ids, _language(body_of(patients[0])), views[0] if views else None)


async def confirm_by_patient(ctx: FhirContext, appointment_id: str, *, now: datetime,
                             via: str) -> Reply:
    """Record the patient's acceptance (`via`: how they said it, kept as the comment)."""
    view = await appointment_view(ctx, appointment_id)
    if is_closed(view, now):
        return Reply(Outcome.CLOSED, view)
    patient = patient_of(view)
    await resources.create(ctx, "AppointmentResponse", {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{appointment_id}"},
        "actor": {"reference": f"Patient/{patient}"},
        "participantStatus": "accepted", "comment": f"Confirmed by the patient {via}"},
        now=now)
    after = await appointment_view(ctx, appointment_id)
    return Reply(Outcome.CONFIRMED if after.status == BOOKED else Outcome.ACKNOWLEDGED, after)


async def cancel_by_patient(ctx: FhirContext, appointment_id: str, *, now: datetime,
                            via: str) -> Reply:
    """Cancel the appointment for the patient, freeing its slots."""
    view = await appointment_view(ctx, appointment_id)
    if view.status == CANCELLED:
        return Reply(Outcome.ALREADY_CANCELLED, view)
    if is_closed(view, now):
        return Reply(Outcome.CLOSED, view)
    patient_of(view)
    reason = {"coding": [{"system": CANCELLATION_REASON_SYSTEM, "code": "pat-crs",
                          "display": "Patient: Canceled via automated reminder system"}],
              "text": f"Cancelled by the patient {via}"}
    stored = await booking.change_status(ctx, appointment_id, CANCELLED, now=now, reason=reason)
    [after] = await describe(ctx, [body_of(stored)])
    return Reply(Outcome.CANCELLED, after)


def phone_variants(phone: str) -> list[str]:
    """Spellings a clinic may have stored for an E.164 number (search matches values
    exactly); North American numbers also in their usual dashed and bracketed forms."""
    digits = "".join(c for c in phone if c.isdigit())
    variants = [phone.strip(), f"+{digits}", digits]
    if len(digits) == 11 and digits.startswith("1"):
        area, exchange, line = digits[1:4], digits[4:7], digits[7:]
        variants += [f"+1-{area}-{exchange}-{line}", f"+1 {area} {exchange} {line}",
                     f"+1 ({area}) {exchange}-{line}", f"1-{area}-{exchange}-{line}",
                     f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", digits[1:]]
    return list(dict.fromkeys(v.replace(",", "") for v in variants if v))


def is_closed(view: AppointmentView, now: datetime) -> bool:
    """Whether the appointment is final or has started, so a patient may no longer change it."""
    return view.status in FINAL_STATES or (view.start is not None and view.start <= now)


def patient_of(view: AppointmentView) -> str:
    """The id of the patient a reply acts for; 422 for an appointment without one."""
    if not view.patients:
        raise BusinessRuleViolation(f"Appointment/{view.id} has no patient to reply for",
                                    expression="Appointment.participant")
    return view.patients[0]


def _language(patient: Resource) -> str | None:
    """The patient's preferred language (BCP-47 code), else their first listed one."""
    communications: Sequence[Resource] = patient.get("communication") or ()
    ordered = sorted(communications, key=lambda c: not c.get("preferred"))
    for communication in ordered:
        for coding in (communication.get("language") or {}).get("coding") or ():
            if coding.get("code"):
                return str(coding["code"])
    return None

