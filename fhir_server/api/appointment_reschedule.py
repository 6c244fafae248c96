"""`POST Appointment/{id}/$reschedule`: move an active appointment to new slots or times.

Either `appointment-resource` (the appointment as it should be, same id) or `slot`
references with optional `start`/`end` (default: the slots' earliest start and latest end),
parsed into a `RescheduleRequest` for `services.appointment_reschedule`; a taken slot (409)
leaves the appointment where it was. The answer is the moved Appointment with its ETag.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.appointment_hold import operation_parameters
from fhir_server.api.dependencies import fhir_context
from fhir_server.api.rendering import resource_response
from fhir_server.api.request_parsing import utc_now
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.parameters import Parameters, parameter_expression
from fhir_server.fhir.validation import validate_resource
from fhir_server.services.appointment_reschedule import RescheduleRequest, reschedule_operation

router = FhirRouter()

RESCHEDULE_PARAMETERS = frozenset({"appointment-resource", "slot", "start", "end"})


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


@fhir_route(router, "/Appointment/{id}/$reschedule", "POST")
async def reschedule(request: Request) -> Response:
    """Move the appointment; 409 (nothing changed) if a new slot is taken."""
    ctx = fhir_context(request)
    id = request.path_params["id"]
    params = await operation_parameters(request, RESCHEDULE_PARAMETERS)
    parsed = parse_reschedule(params, id=id, base_url=ctx.base_url)
    stored = await reschedule_operation(ctx, id, parsed, now=utc_now())
    return resource_response(stored)
