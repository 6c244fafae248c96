"""`POST Appointment/$book` (IHE ITI-117, with Argonaut's `cancelled-appt-id`).

Parses the Parameters (`appointment-reference` or `appointment-resource`, `patient-resource`,
`comment`, `cancelled-appt-id`) into a `BookRequest`, checking all of them before anything is
read or written; `services.appointment_book.book_operation` does the rest (see there). The
answer is ITI-117's searchset Bundle with the Appointment: 201 when the booking created it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.appointment_hold import (
    appointment_bundle_response,
    appointment_target,
    operation_parameters,
)
from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import utc_now
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir.errors import BusinessRuleViolation
from fhir_server.fhir.parameters import Parameters, parameter_expression
from fhir_server.fhir.validation import validate_resource
from fhir_server.services.appointment_book import BookRequest, book_operation

router = FhirRouter()

BOOK_PARAMETERS = frozenset({"appointment-reference", "appointment-resource", "patient-resource",
                             "comment", "cancelled-appt-id"})


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


@fhir_route(router, "/Appointment/$book", "POST")
async def book(request: Request) -> Response:
    """Book, confirm, modify, cancel or (with cancelled-appt-id) replace an appointment."""
    ctx = fhir_context(request)
    params = await operation_parameters(request, BOOK_PARAMETERS)
    parsed = parse_book(params, base_url=ctx.base_url)
    now = utc_now()
    outcome = await book_operation(ctx, parsed, now=now)
    return appointment_bundle_response(ctx, outcome.appointment, operation="book", now=now,
                                       created=outcome.created)
