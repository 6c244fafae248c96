"""`POST Appointment/{id}/$reschedule`: move an active appointment to new slots or times.

Either `appointment-resource` (the appointment as it should be, same id) or `slot`
references with optional `start`/`end` (default: the slots' earliest start and latest end).
`booking.reschedule` claims the new slots before it frees the old ones, so a taken slot (409)
leaves the appointment where it was. The answer is the moved Appointment with its ETag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.appointment_hold import operation_parameters
from fhir_server.api.dependencies import fhir_context
from fhir_server.api.rendering import resource_response
from fhir_server.api.request_parsing import utc_now
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir.errors import BusinessRuleViolation, InvalidRequest, ResourceNotFound
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.parameters import Parameters, parameter_expression
from fhir_server.fhir.validation import validate_resource
from fhir_server.services import booking, resources
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of
from fhir_server.store.protocol import StoredResource

router = FhirRouter()

RESCHEDULE_PARAMETERS = frozenset({"appointment-resource", "slot", "start", "end"})

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RescheduleRequest:
    """Where to move: a whole appointment, or slots with an optional explicit window."""

    appointment: Resource | None
    slot_ids: tuple[str, ...]
    start: str | None
    end: str | None


def parse_reschedule(params: Parameters, *, id: str, base_url: str) -> RescheduleRequest:
    """Check the Parameters before anything is read or written."""
    appointment = params.resource("appointment-resource", "Appointment")
    slots = tuple(params.reference_ids("slot", "Slot", base_url=base_url))
    start = params.value("start", "instant")
    end = params.value("end", "instant")
    if appointment is not None:
        if slots or start or end:
            raise InvalidRequest("Give either appointment-resource or slot (with start/end), "
                                 "not both", expression=parameter_expression("slot"))
        if appointment.get("id", id) != id:
            raise InvalidRequest(f"appointment-resource has id '{appointment['id']}', not the "
                                 f"URL's '{id}'",
                                 expression=parameter_expression("appointment-resource"))
        validate_resource({**appointment, "id": id}, resource_type="Appointment")
        return RescheduleRequest({**appointment, "id": id}, (), None, None)
    if not slots:
        raise InvalidRequest("Give the slot(s) to move to, or appointment-resource",
                             expression=parameter_expression("slot"), code="required")
    if start is not None and end is not None and parse_instant(end) <= parse_instant(start):
        raise InvalidRequest("end must be after start", expression=parameter_expression("end"))
    return RescheduleRequest(None, slots, start, end)


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


async def reschedule_appointment(ctx: FhirContext, id: str, request: RescheduleRequest, *,
                                 now: datetime) -> StoredResource:
    """Move the appointment (see the module docstring)."""
    wanted = request.appointment or await _moved_body(ctx, id, request)
    return await booking.reschedule(ctx, id, wanted, now=now, options=booking.BookingOptions())


@fhir_route(router, "/Appointment/{id}/$reschedule", "POST")
async def reschedule(request: Request) -> Response:
    """Move the appointment; 409 (nothing changed) if a new slot is taken."""
    ctx = fhir_context(request)
    id = request.path_params["id"]
    params = await operation_parameters(request, RESCHEDULE_PARAMETERS)
    parsed = parse_reschedule(params, id=id, base_url=ctx.base_url)
    stored = await reschedule_appointment(ctx, id, parsed, now=utc_now())
    return resource_response(stored)
