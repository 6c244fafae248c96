"""Shared edge of the finding operations: parse GET or POST Parameters, run, render proposals.

The answer is a searchset Bundle: one `proposed` Appointment per found time (not stored, so
its fullUrl is a `urn:uuid:` derived from its content: the same question gets the same
answer), then the Slots they use as `include` entries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import NAMESPACE_URL, uuid5

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.request_parsing import check_format, json_body, utc_now
from fhir_server.api.responses import fhir_json
from fhir_server.fhir import bundles
from fhir_server.scheduling.find_params import ParamSpec, SlotQuery, from_parameters, from_query
from fhir_server.services.find_slots import FindResult, FoundTime, find_slots


async def find_and_render(request: Request, spec: ParamSpec, *, operation: str) -> Response:
    """Run a finding operation on the request's GET parameters or POSTed Parameters."""
    check_format(request)
    ctx = fhir_context(request)
    now = utc_now()
    if request.method == "POST":
        query = from_parameters(await json_body(request), spec)
        self_link = f"{ctx.base_url}/{operation}"
    else:
        pairs = list(request.query_params.multi_items())
        query = from_query(pairs, spec)
        self_link = f"{ctx.base_url}/{operation}" + (f"?{urlencode(pairs)}" if pairs else "")
    result = await find_slots(ctx, query, now=now,
                              may_use_emergency=ctx.caller.may_use_emergency)
    return fhir_json(render_found(query, result, base_url=ctx.base_url, now=now,
                                  self_link=self_link))


def render_found(query: SlotQuery, result: FindResult, *, base_url: str, now: datetime,
                 self_link: str) -> dict[str, Any]:
    """The searchset Bundle of proposals (matches) and the Slots they use (includes)."""
    entries = [bundles.SearchEntry("Slot", s.id, s.body or b"{}", "include")
               for s in result.slots]
    bundle = bundles.searchset(base_url=base_url, entries=entries, total=result.total,
                               links=[("self", self_link)], now=now)
    proposals = []
    for found in result.found:
        appointment = proposed_appointment(query, found, result.duration)
        proposals.append({"fullUrl": f"urn:uuid:{_content_uuid(appointment)}",
                          "resource": appointment, "search": {"mode": "match"}})
    if proposals:
        bundle["entry"] = proposals + bundle.get("entry", [])
    return bundle


def proposed_appointment(query: SlotQuery, found: FoundTime, duration: int) -> dict[str, Any]:
    """A `proposed` Appointment for one found time, every actor still to accept it."""
    appointment: dict[str, Any] = {"resourceType": "Appointment", "status": "proposed"}
    if query.service_types:
        appointment["serviceType"] = [_concept(code) for code in query.service_types]
    if query.specialties:
        appointment["specialty"] = [_concept(code) for code in query.specialties]
    if len(query.appointment_types) == 1:
        appointment["appointmentType"] = _concept(query.appointment_types[0])
    if query.reasons:
        appointment["reasonCode"] = list(query.reasons)
    appointment.update({"start": _instant(found.start), "end": _instant(found.end),
                        "minutesDuration": duration})
    slot_ids = list(dict.fromkeys(i for _, ids in found.participants for i in ids))
    appointment["slot"] = [{"reference": f"Slot/{i}"} for i in slot_ids]
    actors = list(dict.fromkeys(actor for actor, _ in found.participants))
    if query.patient and query.patient not in actors:
        actors.append(query.patient)
    appointment["participant"] = [
        {"actor": {"reference": actor}, "required": "required", "status": "needs-action"}
        for actor in actors]
    return appointment


def _concept(code: tuple[str | None, str]) -> dict[str, Any]:
    system, value = code
    return {"coding": [{"system": system, "code": value} if system else {"code": value}]}


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content_uuid(resource: dict[str, Any]) -> str:
    return str(uuid5(NAMESPACE_URL, orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode()))
