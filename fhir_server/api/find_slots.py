"""`Slot/$find-slots` and system-level `$find-slots`: bookable times for actors and a patient.

Declared in `capability/OperationDefinition-Slot-find-slots.json`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.candidates import find_and_render
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.scheduling.find_params import FIND_SLOTS

router = FhirRouter()


@fhir_route(router, "/Slot/$find-slots", "GET", "POST")
async def find_slots_on_type(request: Request) -> Response:
    """Find bookable times among Slots."""
    return await find_and_render(request, FIND_SLOTS, operation="Slot/$find-slots")


@fhir_route(router, "/$find-slots", "GET", "POST")
async def find_slots_on_system(request: Request) -> Response:
    """The same operation invoked at the server root."""
    return await find_and_render(request, FIND_SLOTS, operation="$find-slots")
