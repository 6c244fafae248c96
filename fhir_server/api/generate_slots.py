"""`Schedule/{id}/$generate-slots`: make a schedule's slots in a window match its rules.

Declared by `capability/OperationDefinition-Schedule-generate-slots.json`. GET takes `start`
and `end` as query parameters, POST a `Parameters` body; both answer a `Parameters` report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import check_format, json_body, utc_now
from fhir_server.api.responses import fhir_json
from fhir_server.api.routing import FhirRouter, fhir_route
from fhir_server.fhir.errors import InvalidRequest
from fhir_server.services.slot_generation import GenerationReport, generate_slots

router = FhirRouter()

WINDOW_PARAMS = ("start", "end")


@fhir_route(router, "/Schedule/{id}/$generate-slots", "GET", "POST")
async def generate(request: Request) -> Response:
    """Generate (create, update, remove) the schedule's free slots in [start, end)."""
    check_format(request)
    raw = (await _body_values(request) if request.method == "POST"
           else {k: v for k, v in request.query_params.items() if k in WINDOW_PARAMS})
    start, end = (_date_time(raw.get(name), name) for name in WINDOW_PARAMS)
    report = await generate_slots(fhir_context(request), request.path_params["id"],
                                  start=start, end=end, now=utc_now())
    return fhir_json(report_parameters(report))


async def _body_values(request: Request) -> dict[str, Any]:
    """`start` and `end` from a Parameters body (valueDateTime or valueInstant)."""
    body = await json_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("$generate-slots takes a Parameters resource", code="structure")
    values: dict[str, Any] = {}
    for parameter in body.get("parameter") or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name in WINDOW_PARAMS:
            values[name] = parameter.get("valueDateTime", parameter.get("valueInstant"))
    return values


def _date_time(value: Any, name: str) -> datetime:
    """A dateTime with a time and a zone offset; anything else is a 400 naming the parameter."""
    if value is None:
        raise InvalidRequest(f"Parameter '{name}' is required", expression=name,
                             code="required")
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None or "T" not in str(value):
        raise InvalidRequest(f"Parameter '{name}' must be a dateTime with a time and zone, "
                             f"e.g. 2030-03-11T00:00:00-05:00; got {value!r}", expression=name)
    return moment


def report_parameters(report: GenerationReport) -> dict[str, Any]:
    """The report as an R4 Parameters resource: counts first, then the references."""
    parameters: list[dict[str, Any]] = [
        {"name": "schedule", "valueReference": {"reference": f"Schedule/{report.schedule_id}"}},
        {"name": "start", "valueDateTime": _instant(report.start)},
        {"name": "end", "valueDateTime": _instant(report.end)},
    ]
    if report.rules is not None:
        parameters.append({"name": "rules", "valueString": report.rules})
    listed = (("created", "Slot", report.created), ("updated", "Slot", report.updated),
              ("removed", "Slot", report.removed), ("orphaned-slot", "Slot", report.orphaned),
              ("affected-appointment", "Appointment", report.affected_appointments))
    counts = (*((name, ids) for name, _, ids in listed), ("kept", report.kept))
    parameters += [{"name": f"{name}-count", "valueInteger": len(ids)} for name, ids in counts]
    parameters += [{"name": name, "valueReference": {"reference": f"{kind}/{id}"}}
                   for name, kind, ids in listed for id in ids]
    return {"resourceType": "Parameters", "parameter": parameters}


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
