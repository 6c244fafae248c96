"""AppointmentResponse writes keep their Appointment in step (policy: `state_machine`).

A response to an active Appointment on this server is checked before it is stored (a
stranger's response, or one naming no actor, is 422 and nothing is written), stored as a plain
version, and then applied:
1. the responding participant's status is written as a version-checked Appointment update
   (retried on a concurrent change), through the Appointment's own rules;
2. if the policy moves the status on (all required accepted → booked; a required decline →
   cancelled), `booking.change_status` makes the move, so booking claims the slots and
   cancelling frees them.
A response to an appointment this server does not hold, or to one that is already final
(fulfilled, cancelled, noshow, entered-in-error), is kept as a record and changes nothing: the
server checks no other reference's target either, and a late answer is still worth keeping.
Inside transaction Bundles (`after_commit`) the response is already stored, so a response
that cannot be applied is logged and left unapplied rather than failing a committed Bundle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_server.fhir.errors import BusinessRuleViolation, Conflict, FhirError, VersionConflict
from fhir_server.scheduling.state_machine import FINAL_STATES, apply_participant_response
from fhir_server.services import booking, outbox, resources
from fhir_server.services.context import FhirContext, ResourceChange
from fhir_server.services.slot_claims import body_of
from fhir_server.store.protocol import StoredResource, WriteConflict

log = logging.getLogger("fhir_server.appointment_responses")

APPLY_RETRIES = 5

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Response:
    """What a response says: who answered which appointment, and how."""

    appointment_id: str
    actor: str
    participant_status: str


class AppointmentResponseRules:
    """TypeRules for AppointmentResponse: store the response, then move its Appointment on."""

    transactional = True

    async def write(self, ctx: FhirContext, change: ResourceChange) -> StoredResource:
        if change.resource is None:
            return await resources.commit_plain(ctx, change)
        response = await _applicable(ctx, change.resource)
        stored = await resources.commit_plain(ctx, change)
        if response is not None:
            await apply_response(ctx, response, now=change.now)
        return stored

    async def after_commit(self, ctx: FhirContext, stored: StoredResource, *,
                           now: datetime) -> None:
        if stored.deleted:
            return
        try:
            response = await _applicable(ctx, body_of(stored))
            if response is not None:
                await apply_response(ctx, response, now=now)
        except FhirError as error:
            log.warning("AppointmentResponse/%s stored but not applied: %s", stored.id, error)


async def _applicable(ctx: FhirContext, resource: Mapping[str, Any]) -> _Response | None:
    """What the response says, if it is for an active local Appointment; 422 if it cannot
    apply to it (a stranger, no actor). None: keep it as a record only."""
    appointment_id = _appointment_id(resource, ctx.base_url)
    current = await ctx.store.read("Appointment", appointment_id) if appointment_id else None
    if current is None or current.deleted:
        return None
    body = body_of(current)
    if body.get("status") in FINAL_STATES:
        return None
    actor = _local(_reference(resource, "actor"), ctx.base_url)
    if actor is None:
        raise BusinessRuleViolation("The response must name the responding actor",
                                    expression="AppointmentResponse.actor")
    response = _Response(current.id, actor, str(resource.get("participantStatus")))
    apply_participant_response(body, response.actor, response.participant_status)
    return response


async def apply_response(ctx: FhirContext, response: _Response, *, now: datetime) -> None:
    """Record the participant's status on the Appointment, then make any status move."""
    for _ in range(APPLY_RETRIES):
        current = await _appointment(ctx, response)
        before = body_of(current)
        if before.get("status") in FINAL_STATES:
            return  # finished meanwhile: the response stays a record
        after = apply_participant_response(before, response.actor, response.participant_status)
        in_step = {**after, "status": before["status"]}
        if "cancelationReason" in before:
            in_step["cancelationReason"] = before["cancelationReason"]
        else:
            in_step.pop("cancelationReason", None)
        try:
            if in_step != before:
                current = await resources.commit_change(ctx, ResourceChange(
                    "Appointment", current.id, in_step, current, "PUT", now))
            if after["status"] != before["status"]:
                moved = await booking.change_status(ctx, current.id, after["status"], now=now,
                                                    reason=after.get("cancelationReason"),
                                                    expected_version=current.version_id)
                await outbox.appointment_changed(ctx, moved, now=now)
            return
        except (WriteConflict, VersionConflict):
            continue
    raise Conflict(f"Appointment/{response.appointment_id} is being changed concurrently; "
                   f"the response was stored but not applied")


def _appointment_id(resource: Mapping[str, Any], base_url: str) -> str | None:
    appointment = _local(_reference(resource, "appointment"), base_url)
    if appointment is None or not appointment.startswith("Appointment/"):
        return None
    return appointment.split("/", 1)[1]


def _reference(resource: Mapping[str, Any], element: str) -> str | None:
    value = resource.get(element)
    reference = value.get("reference") if isinstance(value, Mapping) else None
    return reference if isinstance(reference, str) else None


def _local(reference: str | None, base_url: str) -> str | None:
    """`Type/id` for a relative reference or an absolute one on this server."""
    if reference is not None and reference.startswith(base_url.rstrip("/") + "/"):
        reference = reference[len(base_url.rstrip("/")) + 1:]
    if reference is None or reference.count("/") != 1:
        return None
    return reference


async def _appointment(ctx: FhirContext, response: _Response) -> StoredResource:
    current = await ctx.store.read("Appointment", response.appointment_id)
    if current is None or current.deleted:
        raise BusinessRuleViolation(f"Appointment/{response.appointment_id} is not known",
                                    expression="AppointmentResponse.appointment")
    return current
