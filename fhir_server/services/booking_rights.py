"""The booking overrides of one call: what the caller's role allows, what the appointment asks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_server.scheduling.slot_hold import overbooking_reason
from fhir_server.services.booking import BookingOptions
from fhir_server.services.context import FhirContext


def booking_options(ctx: FhirContext, appointment: Mapping[str, Any] | None) -> BookingOptions:
    """Emergency slots if the caller's role may use them; overbooking when the appointment
    asks for it with a reason (the API has already refused roles that may not overbook)."""
    return BookingOptions(may_use_emergency=ctx.caller.may_use_emergency,
                          overbook_reason=overbooking_reason(appointment) if appointment else None)
