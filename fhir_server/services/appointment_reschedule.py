"""The `$reschedule` use case: move an active appointment to new slots or times.

The request is either the whole appointment as it should be, or slot ids with an optional
explicit window (default: the slots' earliest start and latest end). `booking.reschedule`
claims the new slots before it frees the old ones, so a taken slot (409) leaves the
appointment where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_server.fhir.errors import BusinessRuleViolation, ResourceNotFound
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.parameters import parameter_expression
from fhir_server.services import booking, outbox, resources
from fhir_server.services.booking_rights import booking_options
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of
from fhir_server.store.protocol import StoredResource

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RescheduleRequest:
    """Where to move: a whole appointment, or slots with an optional explicit window."""

    appointment: Resource | None
    slot_ids: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None


async def reschedule_operation(ctx: FhirContext, id: str, request: RescheduleRequest, *,
                               now: datetime) -> StoredResource:
    """Move Appointment `id` as requested; the moved version."""
    wanted = request.appointment or await _moved_body(ctx, id, request)
    moved = await booking.reschedule(ctx, id, wanted, now=now,
                                     options=booking_options(ctx, wanted))
    await outbox.appointment_changed(ctx, moved, now=now)
    return moved


async def _moved_body(ctx: FhirContext, id: str, request: RescheduleRequest) -> Resource:
    """The current appointment on the requested slots, its window taken from them."""
    body = body_of(await resources.read(ctx, "Appointment", id))
    starts, ends = [], []
    for slot_id in request.slot_ids:
        try:
            slot = body_of(await resources.read(ctx, "Slot", slot_id))
        except ResourceNotFound as error:
            raise BusinessRuleViolation(f"Slot/{slot_id} is not known",
                                        expression=parameter_expression("slot")) from error
        starts.append(slot["start"])
        ends.append(slot["end"])
    start = request.start or min(starts, key=parse_instant)
    end = request.end or max(ends, key=parse_instant)
    if parse_instant(end) <= parse_instant(start):
        raise BusinessRuleViolation("The new end must be after the new start",
                                    expression=parameter_expression("end"))
    body.update(start=start, end=end,
                slot=[{"reference": f"Slot/{slot_id}"} for slot_id in request.slot_ids])
    return body
