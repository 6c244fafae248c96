"""The dispatcher's writes to the outbox: find due requests, lease them, record each outcome.

Every write is version-checked against the version the caller read, so exactly one
dispatcher acts on a request at a time: a claim or an attempt that loses the race raises
`WriteConflict` and the loser drops the work. The lease itself is `outbox_records.Lease`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.search.parse import parse_search
from fhir_server.scheduling.occurrence_timing import next_occurrence
from fhir_server.scheduling.outbox_records import (
    Delivery,
    Lease,
    communication,
    lease_of,
    occurrence_of,
    timing_of,
    with_lease,
)
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of
from fhir_server.services.versions import next_version
from fhir_server.store.protocol import StoredResource, WriteConflict

REQUEST = "CommunicationRequest"
Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    """A request this dispatcher leased, at the version its lease was written."""

    id: str
    version: int


async def due_requests(ctx: FhirContext, *, now: datetime, limit: int) -> list[StoredResource]:
    """Active requests whose occurrence has come (unleased, or their lease lapsed), oldest
    first; one query on the indexed `status` and `occurrence`."""
    request = parse_search(REQUEST, [
        ("status", "active"), ("occurrence", f"le{format_instant(now)}"),
        ("_sort", "occurrence"), ("_count", str(limit))], ctx.registry, now=now,
        base_url=ctx.base_url, max_count=max(limit, 1))
    page = await ctx.store.search(replace(request.query, with_total=False))
    return page.resources


async def claim_due(ctx: FhirContext, *, now: datetime, lease_for: timedelta,
                    limit: int) -> list[Claim]:
    """Lease up to `limit` due requests; those another dispatcher took first are skipped."""
    claims = [await claim(ctx, stored, now=now, lease_for=lease_for)
              for stored in await due_requests(ctx, now=now, limit=limit)]
    return [held for held in claims if held is not None]


async def claim(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                lease_for: timedelta) -> Claim | None:
    """Lease one due request until now + `lease_for`; None if someone else changed it first."""
    body = body_of(stored)
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    until = now + lease_for
    try:
        written = await _write(ctx, stored, with_lease(body, replace(lease, expires=until),
                                                       occurrence=until), now=now)
    except WriteConflict:
        return None
    return Claim(stored.id, written.version_id)


async def claimed(ctx: FhirContext, held: Claim) -> StoredResource | None:
    """The request if it is still active at the claimed version, else None (moved on)."""
    stored = await ctx.store.read(REQUEST, held.id)
    if stored is None or stored.deleted or stored.version_id != held.version:
        return None
    return stored if body_of(stored).get("status") == "active" else None


async def start_attempt(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                        lease_for: timedelta) -> StoredResource:
    """Record that an attempt starts now (attempt + 1, lease renewed from now); raises
    `WriteConflict` if the request changed since it was read."""
    body = body_of(stored)
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    until = now + lease_for
    attempt = replace(lease, attempt=lease.attempt + 1, expires=until)
    return await _write(ctx, stored, with_lease(body, attempt, occurrence=until), now=now)


async def defer(ctx: FhirContext, stored: StoredResource, *, until: datetime, now: datetime,
                error: str | None = None) -> None:
    """Release the lease and look at the request again at `until` (back-off, quiet hours)."""
    body = body_of(stored)
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    waiting = replace(lease, expires=None, last_error=error or lease.last_error)
    await _write(ctx, stored, with_lease(body, waiting, occurrence=until), now=now)


async def finish(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                 status_when_done: str = "completed") -> None:
    """This occurrence is over: arm a repeating request's next one, else close the request
    (`completed`, or `on-hold` after a failed delivery so staff can fix and reactivate it)."""
    body = body_of(stored)
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    timing = timing_of(body)
    following = next_occurrence(timing, after=lease.due, delivered=lease.delivered + 1) \
        if timing is not None else None
    if following is not None:
        armed = Lease(due=following, delivered=lease.delivered + 1)
        await _write(ctx, stored, with_lease(body, armed, occurrence=following), now=now)
        return
    done = with_lease(body, None, occurrence=lease.due)
    done["status"] = status_when_done
    await _write(ctx, stored, done, now=now)


async def revoke(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                 reason: str) -> None:
    """Withdraw a request that no longer makes sense (its appointment was cancelled)."""
    body = body_of(stored)
    revoked = with_lease(body, None, occurrence=(lease_of(body) or Lease(
        due=occurrence_of(body) or now)).due)
    revoked.update(status="revoked", statusReason={"text": reason})
    await _write(ctx, stored, revoked, now=now)


async def recorded_delivery(ctx: FhirContext, communication_id: str) -> StoredResource | None:
    """The Communication already recorded for an occurrence, if any."""
    stored = await ctx.store.read("Communication", communication_id)
    return stored if stored is not None and not stored.deleted else None


async def record_delivery(ctx: FhirContext, request: Mapping[str, Any], delivery: Delivery, *,
                          now: datetime) -> StoredResource:
    """Write the Communication for `delivery`: created, or over an earlier not-done one."""
    record = communication(request, delivery)
    current = await recorded_delivery(ctx, record["id"])
    if current is not None and body_of(current).get("status") == "completed":
        return current  # sent before a crash: that record stands
    write = next_version(ctx, record, resource_type="Communication", id=record["id"],
                         current=current, now=now, method="PUT" if current else "POST")
    [stored] = await ctx.store.commit([write])
    return stored


async def _write(ctx: FhirContext, current: StoredResource, body: Resource, *,
                 now: datetime) -> StoredResource:
    write = next_version(ctx, body, resource_type=REQUEST, id=current.id, current=current,
                         now=now, method="PUT")
    [stored] = await ctx.store.commit([write])
    return stored
