"""The `$book` use case (IHE ITI-117, with Argonaut's `cancelled-appt-id`).

What happens depends on the appointment (a stored one by id, or a resource sent along):
- new (no id, or an id the server does not know): booked (`booking.book`), created;
- stored and sent as `cancelled`: cancelled, its slots freed (`booking.change_status`);
- stored `pending` (held) or `booked`, sent by reference: confirmed as booked
  (`booking.confirm`);
- stored `booked`, sent with other slots or times: moved (`booking.reschedule`);
- otherwise (a proposed one, or a booked one with other changes): written as `booked`
  through the REST update path, whose Appointment rules claim or keep the slots.
With `cancelled_id` the (new) appointment replaces that one in one step (`booking.replace`):
a taken slot (409) leaves the old booking intact, and the new one may overlap the old one's
time for the same patient.

`patient` adds the patient as a required, accepted participant when the appointment has none.
A Patient the server knows (by id) is only referenced; an unknown one is registered (with its
id, or a new one) only after the booking succeeded, so a failed booking writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_server.fhir.errors import (
    BusinessRuleViolation,
    Conflict,
    ResourceNotFound,
    VersionConflict,
)
from fhir_server.fhir.parameters import parameter_expression
from fhir_server.scheduling.slot_hold import slot_ids
from fhir_server.scheduling.state_machine import BOOKED, CANCELLED, PENDING, PROPOSED
from fhir_server.services import booking, outbox, resources
from fhir_server.services.booking_rights import booking_options
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of
from fhir_server.services.versions import new_id
from fhir_server.store.protocol import StoredResource

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AppointmentTarget:
    """The Appointment an operation acts on: a stored one by id, or a resource sent along."""

    id: str | None
    resource: Resource | None


@dataclass(frozen=True, slots=True)
class BookRequest:
    """What `$book` was asked: the appointment, a patient to attach, a comment, and the id of
    an appointment the booking replaces."""

    target: AppointmentTarget
    patient: Resource | None = None
    comment: str | None = None
    cancelled_id: str | None = None


@dataclass(frozen=True, slots=True)
class BookOutcome:
    """The resulting Appointment, and whether this booking created it."""

    appointment: StoredResource
    created: bool


async def book_operation(ctx: FhirContext, request: BookRequest, *,
                         now: datetime) -> BookOutcome:
    """Book, confirm, modify, cancel or replace as the module docstring says, then plan the
    messages the resulting appointment calls for."""
    outcome = await _book(ctx, request, now=now)
    await outbox.appointment_changed(ctx, outcome.appointment, now=now)
    return outcome


async def _book(ctx: FhirContext, request: BookRequest, *, now: datetime) -> BookOutcome:
    current = await _current(ctx, request.target)
    if request.cancelled_id is not None:
        return await _replace(ctx, request, current, now=now)
    wanted = dict(request.target.resource) if request.target.resource is not None else (
        body_of(current) if current is not None else {})
    if current is not None and wanted.get("status") == CANCELLED:
        reason = wanted.get("cancelationReason") or {"text": "Cancelled by $book"}
        cancelled = await booking.change_status(ctx, current.id, CANCELLED, now=now,
                                                reason=reason)
        return BookOutcome(cancelled, created=False)
    link = await _attach_patient(ctx, wanted, request.patient)
    as_stored = request.target.resource is None and link.appointment is wanted
    if request.comment is not None:
        link.appointment["comment"] = request.comment
    if current is None:
        booked = _as_booked(link.appointment)
        outcome = BookOutcome(await booking.book(ctx, booked, now=now,
                                                 options=booking_options(ctx, booked),
                                                 appointment_id=request.target.id),
                              created=True)
    elif as_stored and body_of(current).get("status") in (PENDING, BOOKED):
        outcome = BookOutcome(await booking.confirm(ctx, current.id, now=now,
                                                    comment=request.comment), created=False)
    else:
        outcome = await _book_existing(ctx, current, link.appointment, now=now)
    await _register(ctx, link, now=now)
    return outcome


async def _replace(ctx: FhirContext, request: BookRequest, current: StoredResource | None, *,
                   now: datetime) -> BookOutcome:
    """Argonaut reschedule: the new appointment replaces `cancelled_id` (`booking.replace`)."""
    assert request.cancelled_id is not None
    if current is not None or request.target.resource is None:
        name = "appointment-resource" if request.target.resource else "appointment-reference"
        raise BusinessRuleViolation("cancelled-appt-id replaces an appointment with a new one; "
                                    f"Appointment/{request.target.id} is already stored",
                                    expression=parameter_expression(name))
    link = await _attach_patient(ctx, dict(request.target.resource), request.patient)
    if request.comment is not None:
        link.appointment["comment"] = request.comment
    booked = _as_booked(link.appointment)
    new, _ = await booking.replace(ctx, request.cancelled_id, booked, now=now,
                                   options=booking_options(ctx, booked),
                                   appointment_id=request.target.id)
    await _register(ctx, link, now=now)
    return BookOutcome(new, created=True)


def _as_booked(appointment: Resource) -> Resource:
    """`$book` books: a proposed or pending appointment sent along becomes booked."""
    if appointment.get("status") in (PROPOSED, PENDING):
        appointment["status"] = BOOKED
    return appointment


@dataclass(frozen=True, slots=True)
class _PatientLink:
    """The appointment with its patient attached, and a Patient to register afterwards."""

    appointment: Resource
    to_register: Resource | None


async def _attach_patient(ctx: FhirContext, appointment: Resource,
                          patient: Resource | None) -> _PatientLink:
    if patient is None:
        return _PatientLink(appointment, None)
    known = await _known_patient(ctx, patient.get("id"))
    id = patient.get("id") or new_id()
    reference = f"Patient/{id}"
    present = [p for p in appointment.get("participant", [])
               if str((p.get("actor") or {}).get("reference", "")).startswith("Patient/")]
    if present:
        if all(p["actor"]["reference"] != reference for p in present):
            raise BusinessRuleViolation("The appointment already has another patient",
                                        expression=parameter_expression("patient-resource"))
        return _PatientLink(appointment, None)
    participant = {"actor": {"reference": reference}, "required": "required",
                   "status": "accepted"}
    updated = {**appointment, "participant": [participant, *appointment.get("participant", [])]}
    return _PatientLink(updated, None if known else {**patient, "id": id})


async def _register(ctx: FhirContext, link: _PatientLink, *, now: datetime) -> None:
    """Store the Patient sent along, now that the booking succeeded."""
    if link.to_register is not None:
        await resources.update(ctx, "Patient", link.to_register["id"], link.to_register,
                               now=now)


async def _known_patient(ctx: FhirContext, id: str | None) -> bool:
    if id is None:
        return False
    try:
        await resources.read(ctx, "Patient", id)
    except ResourceNotFound:
        return False
    return True


async def _current(ctx: FhirContext, target: AppointmentTarget) -> StoredResource | None:
    """The stored appointment, or None for a new resource (404 for an unknown reference)."""
    if target.resource is None:
        assert target.id is not None
        return await resources.read(ctx, "Appointment", target.id)
    if target.id is None:
        return None
    try:
        return await resources.read(ctx, "Appointment", target.id)
    except ResourceNotFound:
        return None


async def _book_existing(ctx: FhirContext, current: StoredResource, wanted: Resource, *,
                         now: datetime) -> BookOutcome:
    """A booked appointment sent with new slots or times moves; anything else is written as
    booked through the REST update path (its Appointment rules claim what is needed)."""
    stored_body = body_of(current)
    if stored_body.get("status") == BOOKED and wanted.get("status") == BOOKED and _moved(
            stored_body, wanted):
        return BookOutcome(await booking.reschedule(ctx, current.id, wanted, now=now,
                                                    options=booking_options(ctx, wanted)),
                           created=False)
    wanted = {**_as_booked(wanted), "id": current.id}
    try:
        done = await resources.update(ctx, "Appointment", current.id, wanted, now=now,
                                      if_match=current.version_id)
    except VersionConflict as error:
        raise Conflict(f"Appointment/{current.id} changed while it was being booked; "
                       f"try again") from error
    return BookOutcome(done.stored, created=done.created)


def _moved(old: Resource, new: Resource) -> bool:
    return (slot_ids(old) != slot_ids(new) or old.get("start") != new.get("start")
            or old.get("end") != new.get("end"))
