"""`POST Appointment/$hold` (IHE ITI-116): hold a proposed appointment's slots for a while.

Input: `appointment-reference` (a stored proposed or pending Appointment) or
`appointment-resource` (e.g. one of `$find`'s candidates, with its `slot` references), and
`hold-duration` in minutes (1–60, default 10). The Appointment becomes `pending` and its
slots `busy-tentative` with an expiry; a slot that is not free is 409 with nothing written.

The answer is what ITI-116 specifies: a searchset Bundle whose one match is the held
Appointment (201 with Location when the hold created it, 200 otherwise).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.rendering import location
from fhir_server.api.request_parsing import check_format, json_body, utc_now
from fhir_server.api.responses import fhir_json
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir import bundles
from fhir_server.fhir.errors import InvalidRequest
from fhir_server.fhir.parameters import Parameters, parameter_expression
from fhir_server.fhir.validation import validate_resource
from fhir_server.services import booking
from fhir_server.services.appointment_book import AppointmentTarget
from fhir_server.services.booking_rights import booking_options
from fhir_server.services.context import FhirContext
from fhir_server.store.protocol import StoredResource

router = FhirRouter()

HOLD_PARAMETERS = frozenset({"appointment-reference", "appointment-resource", "hold-duration"})
MIN_HOLD_MINUTES = 1
MAX_HOLD_MINUTES = 60
DEFAULT_HOLD_MINUTES = 10


def appointment_target(params: Parameters, *, base_url: str,
                       required: bool = True) -> AppointmentTarget | None:
    """`appointment-reference` or `appointment-resource`, never both (a validated resource)."""
    reference = params.reference_id("appointment-reference", "Appointment", base_url=base_url)
    resource = params.resource("appointment-resource", "Appointment")
    if reference is not None and resource is not None:
        raise InvalidRequest("Give either appointment-reference or appointment-resource, not "
                             "both", expression=parameter_expression("appointment-reference"))
    if reference is None and resource is None:
        if not required:
            return None
        raise InvalidRequest("The operation needs appointment-reference or appointment-resource",
                             expression=parameter_expression("appointment-reference"),
                             code="required")
    if resource is not None:
        validate_resource(resource, resource_type="Appointment")
    return AppointmentTarget(reference or (resource or {}).get("id"), resource)


def hold_duration(params: Parameters) -> timedelta:
    """`hold-duration` in minutes, within the bounds a hold may last."""
    minutes = params.value("hold-duration", "integer")
    if minutes is None:
        return timedelta(minutes=DEFAULT_HOLD_MINUTES)
    if not MIN_HOLD_MINUTES <= minutes <= MAX_HOLD_MINUTES:
        raise InvalidRequest(f"hold-duration must be {MIN_HOLD_MINUTES} to {MAX_HOLD_MINUTES} "
                             f"minutes, not {minutes}",
                             expression=parameter_expression("hold-duration"), code="value")
    return timedelta(minutes=minutes)


def appointment_bundle_response(ctx: FhirContext, stored: StoredResource, *, operation: str,
                                now: datetime, created: bool | None = None) -> Response:
    """The ITI-116/117 answer: a searchset Bundle holding the one resulting Appointment
    (201 with Location if the operation created it; by default, if it is at version 1)."""
    entry = bundles.SearchEntry(stored.resource_type, stored.id, stored.body or b"{}")
    bundle = bundles.searchset(base_url=ctx.base_url, entries=[entry], total=1,
                               links=[("self", f"{ctx.base_url}/Appointment/${operation}")],
                               now=now)
    if created is None:
        created = stored.version_id == 1
    headers = {"Location": location(ctx.base_url, stored)} if created else None
    return fhir_json(bundle, status=201 if created else 200, headers=headers)


async def operation_parameters(request: Request, known: frozenset[str]) -> Parameters:
    """The request's `Parameters`, refusing names the operation does not define."""
    check_format(request)
    params = Parameters.parse(await json_body(request))
    params.refuse_unknown(known)
    return params


@fhir_route(router, "/Appointment/$hold", "POST")
async def hold(request: Request) -> Response:
    """Hold the appointment's slots tentatively; 409 if any is taken."""
    ctx = fhir_context(request)
    params = await operation_parameters(request, HOLD_PARAMETERS)
    target = appointment_target(params, base_url=ctx.base_url)
    assert target is not None
    hold_for = hold_duration(params)
    now = utc_now()
    stored = await booking.hold(ctx, target.resource, appointment_id=target.id, now=now,
                                hold_for=hold_for,
                                options=booking_options(ctx, target.resource))
    return appointment_bundle_response(ctx, stored, operation="hold", now=now)
