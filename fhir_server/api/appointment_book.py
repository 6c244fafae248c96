"""`POST Appointment/$book` (IHE ITI-117, with Argonaut's `cancelled-appt-id`).

What happens depends on the appointment (`appointment-reference` or `appointment-resource`):
- new (no id, or an id the server does not know): booked (`booking.book`), 201;
- stored and sent as `cancelled`: cancelled, its slots freed (`booking.change_status`);
- stored `pending` (held), sent by reference: confirmed as booked (`booking.confirm`);
- stored `booked`, sent with other slots or times: moved (`booking.reschedule`);
- otherwise (a proposed one, or a booked one with other changes): written as `booked`
  through the REST update path, whose Appointment rules claim or keep the slots.
`cancelled-appt-id` books the new appointment first and only then cancels the old one, so a
taken slot (409) leaves the old booking intact.

`patient-resource` adds the patient as a required, accepted participant when the appointment
has none. A Patient the server knows (by id) is only referenced; an unknown one is validated
first and registered (with its id, or a new one) only after the booking succeeded, so a failed
booking writes nothing. The answer is ITI-117's searchset Bundle with the Appointment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.appointment_hold import (
    AppointmentTarget,
    appointment_bundle_response,
    appointment_target,
    operation_parameters,
)
from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import utc_now
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir.errors import (
    BusinessRuleViolation,
    Conflict,
    FhirError,
    ResourceNotFound,
    VersionConflict,
)
from fhir_server.fhir.parameters import Parameters, parameter_expression
from fhir_server.fhir.validation import validate_resource
from fhir_server.scheduling.slot_hold import slot_ids
from fhir_server.scheduling.state_machine import (
    BOOKED,
    CANCELLED,
    PENDING,
    PROPOSED,
    check_transition,
)
from fhir_server.services import booking, resources
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of
from fhir_server.services.versions import new_id
from fhir_server.store.protocol import StoredResource

router = FhirRouter()

BOOK_PARAMETERS = frozenset({"appointment-reference", "appointment-resource", "patient-resource",
                             "comment", "cancelled-appt-id"})

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BookRequest:
    """The parsed `$book` Parameters."""

    target: AppointmentTarget
    patient: Resource | None
    comment: str | None
    cancelled_id: str | None


def parse_book(params: Parameters, *, base_url: str) -> BookRequest:
    """Read and check every parameter before anything is looked up or written."""
    target = appointment_target(params, base_url=base_url)
    assert target is not None
    patient = params.resource("patient-resource", "Patient")
    if patient is not None:
        validate_resource(patient, resource_type="Patient")
    cancelled_id = params.reference_id("cancelled-appt-id", "Appointment", base_url=base_url)
    if cancelled_id is not None and cancelled_id == target.id:
        raise BusinessRuleViolation("An appointment cannot replace itself",
                                    expression=parameter_expression("cancelled-appt-id"))
    return BookRequest(target, patient, params.value("comment", "string"), cancelled_id)


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


async def book_appointment(ctx: FhirContext, request: BookRequest, *,
                           now: datetime) -> StoredResource:
    """Book, confirm, modify or cancel as the module docstring says; register the patient."""
    current = await _current(ctx, request.target)
    wanted = dict(request.target.resource) if request.target.resource is not None else (
        body_of(current) if current is not None else {})
    if current is not None and wanted.get("status") == CANCELLED:
        reason = wanted.get("cancelationReason") or {"text": "Cancelled by $book"}
        return await booking.change_status(ctx, current.id, CANCELLED, now=now, reason=reason)
    link = await _attach_patient(ctx, wanted, request.patient)
    as_stored = request.target.resource is None and link.appointment is wanted
    if request.comment is not None:
        link.appointment["comment"] = request.comment
    if current is None:
        stored = await _book_new(ctx, link.appointment, request.target.id, now=now)
    elif as_stored and body_of(current).get("status") in (PENDING, BOOKED):
        stored = await booking.confirm(ctx, current.id, now=now, comment=request.comment)
    else:
        stored = await _book_existing(ctx, current, link.appointment, now=now)
    if link.to_register is not None:
        await resources.update(ctx, "Patient", link.to_register["id"], link.to_register,
                               now=now)
    return stored


async def _book_new(ctx: FhirContext, appointment: Resource, id: str | None, *,
                    now: datetime) -> StoredResource:
    if appointment.get("status") in (PROPOSED, PENDING):
        appointment["status"] = BOOKED
    return await booking.book(ctx, appointment, now=now, options=booking.BookingOptions(),
                              appointment_id=id)


async def _book_existing(ctx: FhirContext, current: StoredResource, wanted: Resource, *,
                         now: datetime) -> StoredResource:
    """A booked appointment sent with new slots or times moves; anything else is written as
    booked through the REST update path (its Appointment rules claim what is needed)."""
    stored_body = body_of(current)
    if stored_body.get("status") == BOOKED and wanted.get("status") == BOOKED and _moved(
            stored_body, wanted):
        return await booking.reschedule(ctx, current.id, wanted, now=now,
                                        options=booking.BookingOptions())
    if wanted.get("status") in (PROPOSED, PENDING):
        wanted["status"] = BOOKED
    wanted["id"] = current.id
    try:
        done = await resources.update(ctx, "Appointment", current.id, wanted, now=now,
                                      if_match=current.version_id)
    except VersionConflict as error:
        raise Conflict(f"Appointment/{current.id} changed while it was being booked; "
                       f"try again") from error
    return done.stored


def _moved(old: Resource, new: Resource) -> bool:
    return (slot_ids(old) != slot_ids(new) or old.get("start") != new.get("start")
            or old.get("end") != new.get("end"))


async def replace_appointment(ctx: FhirContext, request: BookRequest, *,
                              now: datetime) -> StoredResource:
    """Argonaut reschedule: book the new appointment, then cancel the old one.

    The new slots are claimed first, so a lost claim (409) leaves the old booking untouched;
    if the old one then cannot be cancelled (changed meanwhile), the new booking is cancelled
    again and the caller gets 409.
    """
    assert request.cancelled_id is not None
    old = await resources.read(ctx, "Appointment", request.cancelled_id)
    check_transition(body_of(old).get("status"), CANCELLED)
    new = await book_appointment(ctx, request, now=now)
    reason = {"text": f"Rescheduled to Appointment/{new.id}"}
    try:
        await booking.change_status(ctx, old.id, CANCELLED, now=now, reason=reason,
                                    expected_version=old.version_id)
    except FhirError as error:
        await booking.change_status(ctx, new.id, CANCELLED, now=now, reason={
            "text": f"Replacement of Appointment/{old.id} failed"})
        raise Conflict(f"Appointment/{old.id} changed while it was being rescheduled; "
                       f"try again") from error
    return new


@fhir_route(router, "/Appointment/$book", "POST")
async def book(request: Request) -> Response:
    """Book, confirm, modify, cancel or (with cancelled-appt-id) replace an appointment."""
    ctx = fhir_context(request)
    params = await operation_parameters(request, BOOK_PARAMETERS)
    parsed = parse_book(params, base_url=ctx.base_url)
    now = utc_now()
    if parsed.cancelled_id is not None:
        stored = await replace_appointment(ctx, parsed, now=now)
    else:
        stored = await book_appointment(ctx, parsed, now=now)
    return appointment_bundle_response(ctx, stored, operation="book", now=now)
