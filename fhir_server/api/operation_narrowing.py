"""Apply an allowing `Decision`'s restrictions to the scheduling operations, before they run.

- `$find`/`$find-slots`: a patient-context token may only name its own patient (the finder
  avoids the patient's booked times, which would reveal another patient's schedule).
- `$hold`/`$book`/`$reschedule` act on one appointment: it is judged like a REST write
  (compartments before and after, the patient token's own patient, overbooking), and so is
  the appointment `$book` cancels through `cancelled-appt-id`.
- `$generate-slots`: a doctor only on their own schedule.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.narrowing import (
    check_change,
    confines,
    current_json,
    may_overbook,
    no_overbooking,
)
from fhir_server.auth.policy import Access, AccessDenied, Decision
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.parameters import Parameters
from fhir_server.scheduling.find_params import (
    FIND_SLOTS,
    ITI_115_FIND,
    ParamSpec,
    SlotQuery,
    from_parameters,
    from_query,
)
from fhir_server.scheduling.slot_hold import OVERBOOKING_URL
from fhir_server.services.context import FhirContext
from fhir_server.services.schedule_owner import owns_schedule

FINDERS: dict[str, ParamSpec] = {"find": ITI_115_FIND, "find-slots": FIND_SLOTS}
APPOINTMENT_OPERATIONS = frozenset({"hold", "book", "reschedule"})


async def check_operation(request: Request, operation: str, access: Access,
                          decision: Decision) -> None:
    """Refuse (403) an operation the decision's restrictions do not allow."""
    name = operation.removeprefix("$")
    ctx = fhir_context(request)
    if name == "generate-slots" and decision.own_schedule_of is not None:
        schedule = await current_json(ctx, "Schedule", request.path_params["id"])
        if schedule is not None and not await owns_schedule(ctx, decision.own_schedule_of,
                                                             schedule):
            raise AccessDenied(f"{decision.own_schedule_of} may only generate slots for "
                               "their own schedules")
    elif name in FINDERS and decision.compartment is not None:
        query = await _find_query(request, FINDERS[name])
        own = decision.compartment.reference
        if query is not None and query.patient not in (None, own):
            raise AccessDenied(f"A token in the context of {own} may only find times for that "
                               f"patient, not for {query.patient}")
    elif name in APPOINTMENT_OPERATIONS:
        await _check_appointment_operation(request, ctx, name, access, decision)


async def _find_query(request: Request, spec: ParamSpec) -> SlotQuery | None:
    """The finding request as the endpoint will read it; None if malformed (it refuses it)."""
    try:
        if request.method == "POST":
            return from_parameters(orjson.loads(await request.body()), spec)
        return from_query(list(request.query_params.multi_items()), spec)
    except (orjson.JSONDecodeError, FhirError):
        return None


async def _check_appointment_operation(request: Request, ctx: FhirContext, name: str,
                                       access: Access, decision: Decision) -> None:
    """Judge the appointment acted on (and the one `$book` cancels) like a REST write."""
    raw = await request.body()
    if not may_overbook(access) and OVERBOOKING_URL.encode() in raw:
        raise no_overbooking(access)
    if not confines(decision, "Appointment"):
        return
    try:
        params = Parameters.parse(orjson.loads(raw))
        wanted = params.resource("appointment-resource", "Appointment")
        reference = (request.path_params.get("id") if name == "reschedule" else
                     params.reference_id("appointment-reference", "Appointment",
                                         base_url=ctx.base_url))
        patient = params.resource("patient-resource", "Patient")
        cancelled = (params.reference_id("cancelled-appt-id", "Appointment",
                                         base_url=ctx.base_url) if name == "book" else None)
    except (orjson.JSONDecodeError, FhirError):
        return  # malformed: the endpoint refuses it before anything is written
    if reference is None and wanted is not None:
        reference = wanted.get("id")
    current = await current_json(ctx, "Appointment", reference)
    await check_change(ctx, access, decision, "Appointment", current=current, after=wanted)
    if cancelled is not None:
        await check_change(ctx, access, decision, "Appointment",
                           current=await current_json(ctx, "Appointment", cancelled), after=None)
    own = decision.compartment
    if own is not None and patient is not None and patient.get("id") != own.patient_id:
        raise AccessDenied("A patient token may only book for its own patient")
