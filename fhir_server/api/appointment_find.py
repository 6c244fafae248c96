"""IHE ITI-115 Find Potential Appointments: `Appointment/$find` by GET or POST Parameters.

Declared in `capability/OperationDefinition-Appointment-find.json`. It runs the same finder
as `$find-slots`; only the parameter names differ (`visit-type`, `organization`,
`location-string`, `patient-resource`, `reason`, and `startTime`/`endTime` aliases).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.candidates import find_and_render
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.scheduling.find_params import ITI_115_FIND

router = FhirRouter()


@fhir_route(router, "/Appointment/$find", "GET", "POST")
async def find_appointments(request: Request) -> Response:
    """Proposed appointments for the requested visit."""
    return await find_and_render(request, ITI_115_FIND, operation="Appointment/$find")
