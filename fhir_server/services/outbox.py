"""The outbox: each Appointment write plans the messages it calls for as CommunicationRequests.

`appointment_changed` runs after the appointment version is stored, from every write path
(REST, `$book`, `$reschedule`, responses). It plans with `scheduling.message_plan` and writes:
new requests as conditional creates on an id derived from their stable key (a retry or a
concurrent planner creates nothing twice), moves and revocations as version-checked updates
(a lost race re-plans). It never raises: a booking stands even if its messages could not be
planned. The log line `event=outbox.plan_failed` says so, and `reconcile` (run by the
dispatcher's beat) plans for recently changed booked appointments that have no confirmation
request: one indexed query for the appointments, one for their confirmation keys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.search.parse import parse_search
from fhir_server.notify.messages import IDEMPOTENCY_SYSTEM, MessageKind
from fhir_server.scheduling.message_plan import (
    ExistingRequest,
    MessagePlan,
    NewRequest,
    plan_messages,
    request_key,
)
from fhir_server.scheduling.outbox_records import (
    kind_category,
    kind_of,
    lease_of,
    occurrence_of,
    outbox_key,
    resource_id_for,
    with_lease,
)
from fhir_server.scheduling.slot_hold import replaced_id
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of
from fhir_server.services.versions import next_version
from fhir_server.settings import get_settings
from fhir_server.store.protocol import StoredResource, WriteConflict

log = logging.getLogger("fhir_server.outbox")

PLAN_RETRIES = 3
RECONCILE_LIMIT = 200
REQUESTS_PER_APPOINTMENT = 200

Resource = dict[str, Any]


async def appointment_changed(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                              offsets_h: Sequence[float] | None = None) -> None:
    """Plan and write the messages the stored Appointment version calls for; log, never raise."""
    try:
        for _ in range(PLAN_RETRIES):
            try:
                await _plan_and_write(ctx, stored, now=now, offsets_h=_offsets(offsets_h))
                return
            except WriteConflict:
                continue  # a request changed under us (dispatched, moved): plan again
        log.warning("event=outbox.plan_failed appointment=%s version=%s reason=conflicts",
                    stored.id, stored.version_id)
    except Exception:
        log.exception("event=outbox.plan_failed appointment=%s version=%s", stored.id,
                      stored.version_id)


async def reconcile(ctx: FhirContext, *, now: datetime, window: timedelta,
                    offsets_h: Sequence[float] | None = None) -> int:
    """Plan for booked future appointments changed within `window` that lack a confirmation
    request (their write's planning failed); how many were repaired."""
    appointments = await _search(ctx, "Appointment", [
        ("status", "booked"), ("date", f"gt{format_instant(now)}"),
        ("_lastUpdated", f"ge{format_instant(now - window)}"), ("_sort", "-_lastUpdated"),
        ("_count", str(RECONCILE_LIMIT))], now=now)
    if not appointments:
        return 0
    keys = {request_key(a.id, MessageKind.CONFIRMATION): a for a in appointments}
    confirmed = await _search(ctx, "CommunicationRequest", [
        ("identifier", ",".join(f"{IDEMPOTENCY_SYSTEM}|{key}" for key in keys)),
        ("_count", str(len(keys)))], now=now)
    missing = [a for key, a in keys.items()
               if key not in {outbox_key(body_of(r)) for r in confirmed}]
    for appointment in missing:
        await appointment_changed(ctx, appointment, now=now, offsets_h=offsets_h)
    return len(missing)


async def requests_about(ctx: FhirContext, reference: str, *,
                         now: datetime) -> list[StoredResource]:
    """The CommunicationRequests about one resource (`about=Appointment/<id>`)."""
    return await _search(ctx, "CommunicationRequest", [
        ("about", reference), ("_count", str(REQUESTS_PER_APPOINTMENT))], now=now)


async def _plan_and_write(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                          offsets_h: Sequence[float]) -> None:
    previous = await ctx.store.read_version("Appointment", stored.id, stored.version_id - 1) \
        if stored.version_id > 1 else None
    previous_body = body_of(previous) if previous is not None and not previous.deleted else None
    current = body_of(stored) if not stored.deleted else None
    # A first version has no requests yet (a retry's creates are conditional anyway).
    requests = await requests_about(ctx, f"Appointment/{stored.id}", now=now) \
        if stored.version_id > 1 else []
    by_id = {request.id: request for request in requests}
    plan = plan_messages(previous_body, current, appointment_id=stored.id,
                         version=stored.version_id, existing=[_existing(r) for r in requests],
                         now=now, offsets_h=offsets_h)
    await _write(ctx, plan, by_id, now=now)
    old = replaced_id(current) if current is not None and previous is None else None
    if old is not None:  # a replacement's old appointment says nothing more
        await _revoke_all(ctx, old, now=now)


async def _write(ctx: FhirContext, plan: MessagePlan, by_id: dict[str, StoredResource], *,
                 now: datetime) -> None:
    await _create(ctx, plan.create, now=now)
    for request, when in plan.move:
        body = with_lease(body_of(by_id[request.id]), None, occurrence=when)
        await _update(ctx, by_id[request.id], body, now=now)
    for request in plan.revoke:
        await _revoke(ctx, by_id[request.id], now=now)


async def _create(ctx: FhirContext, new: Sequence[NewRequest], *, now: datetime) -> None:
    """Create the requests in one commit; if one exists already, each on its own."""
    writes = [next_version(ctx, request_resource(n, now=now), resource_type="CommunicationRequest",
                           id=resource_id_for(n.key), current=None, now=now, method="POST")
              for n in new]
    try:
        await ctx.store.commit(writes)
        return
    except WriteConflict:
        if len(writes) == 1:
            return
    for write in writes:
        try:
            await ctx.store.commit([write])
        except WriteConflict:
            pass  # created already, by a retry or a concurrent planner


def request_resource(new: NewRequest, *, now: datetime) -> Resource:
    """The CommunicationRequest for a planned message."""
    return {"resourceType": "CommunicationRequest", "id": resource_id_for(new.key),
            "identifier": [{"system": IDEMPOTENCY_SYSTEM, "value": new.key}],
            "status": "active", "category": [kind_category(new.kind)],
            "priority": "urgent" if new.kind in (MessageKind.CHANGE, MessageKind.CANCELLATION)
            else "routine",
            "subject": {"reference": new.patient}, "recipient": [{"reference": new.patient}],
            "about": [{"reference": f"Appointment/{new.appointment_id}"}],
            "occurrenceDateTime": format_instant(new.when), "authoredOn": format_instant(now),
            "payload": [{"contentString": new.summary}]}


async def _revoke_all(ctx: FhirContext, appointment_id: str, *, now: datetime) -> None:
    for request in await requests_about(ctx, f"Appointment/{appointment_id}", now=now):
        if body_of(request).get("status") == "active":
            await _revoke(ctx, request, now=now)


async def _revoke(ctx: FhirContext, request: StoredResource, *, now: datetime) -> None:
    body = body_of(request)
    revoked = with_lease(body, None, occurrence=occurrence_of(body) or now)
    revoked["status"] = "revoked"
    await _update(ctx, request, revoked, now=now)


async def _update(ctx: FhirContext, current: StoredResource, body: Resource, *,
                  now: datetime) -> None:
    await ctx.store.commit([next_version(ctx, body, resource_type="CommunicationRequest",
                                         id=current.id, current=current, now=now,
                                         method="PUT")])


def _existing(stored: StoredResource) -> ExistingRequest:
    body = body_of(stored)
    lease = lease_of(body)
    return ExistingRequest(id=stored.id, key=outbox_key(body), kind=kind_of(body),
                           status=str(body.get("status")),
                           due=lease.due if lease else occurrence_of(body))


async def _search(ctx: FhirContext, resource_type: str, params: list[tuple[str, str]], *,
                  now: datetime) -> list[StoredResource]:
    request = parse_search(resource_type, params, ctx.registry, now=now, base_url=ctx.base_url,
                           max_count=1000)
    page = await ctx.store.search(replace(request.query, with_total=False))
    return page.resources


def _offsets(offsets_h: Sequence[float] | None) -> Sequence[float]:
    return offsets_h if offsets_h is not None else get_settings().reminder_offsets_h
