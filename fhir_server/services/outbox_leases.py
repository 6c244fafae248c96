"""The dispatcher's writes to the outbox: find due requests, lease them, record each outcome.

Every write is version-checked against the version the caller read, so exactly one
dispatcher acts on a request at a time: a claim or an attempt that loses the race raises
`WriteConflict` (or is left out of `commit_groups`' result) and the loser drops the work.
The lease itself is `outbox_records.Lease`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.search.model import StoreQuery
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
from fhir_server.store.protocol import StoredResource, VersionWrite, WriteConflict

REQUEST = "CommunicationRequest"
CLAIM_BATCH = 200
Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    """A request this dispatcher leased, at the version its lease was written."""

    id: str
    version: int


def due_query(ctx: FhirContext, *, now: datetime, limit: int) -> StoreQuery:
    """Active requests whose occurrence has come (unleased, or their lease lapsed), oldest
    first: one query on the indexed `status` and `occurrence`."""
    request = parse_search(REQUEST, [
        ("status", "active"), ("occurrence", f"le{format_instant(now)}"),
        ("_sort", "occurrence"), ("_count", str(limit))], ctx.registry, now=now,
        base_url=ctx.base_url, max_count=max(limit, 1))
    return replace(request.query, with_total=False)


async def due_requests(ctx: FhirContext, *, now: datetime, limit: int) -> list[StoredResource]:
    """The requests `due_query` finds."""
    return (await ctx.store.search(due_query(ctx, now=now, limit=limit))).resources


async def claim_due(ctx: FhirContext, *, now: datetime, lease_for: timedelta,
                    limit: int) -> list[Claim]:
    """Lease up to `limit` due requests, `CLAIM_BATCH` per commit; those another dispatcher
    took first are skipped."""
    due = await due_requests(ctx, now=now, limit=limit)
    writes = [_claim_write(ctx, stored, now=now, lease_for=lease_for) for stored in due]
    committed = await commit_groups(ctx, [[write] for write in writes], per_commit=CLAIM_BATCH)
    return [Claim(write.id, write.version_id)
            for write, done in zip(writes, committed, strict=True) if done]


async def commit_groups(ctx: FhirContext, groups: Sequence[Sequence[VersionWrite]], *,
                        per_commit: int) -> list[bool]:
    """Commit each group atomically, `per_commit` groups per transaction (a lost race in a
    transaction retries its groups one by one); which groups were committed."""
    committed: list[bool] = []
    for first in range(0, len(groups), per_commit):
        chunk = groups[first:first + per_commit]
        try:
            await ctx.store.commit([write for group in chunk for write in group])
            committed += [True] * len(chunk)
        except WriteConflict:
            if len(chunk) == 1:
                committed.append(False)
                continue
            committed += await commit_groups(ctx, chunk, per_commit=1)
    return committed


async def claim(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                lease_for: timedelta) -> Claim | None:
    """Lease one due request until now + `lease_for`, counting an attempt; None if someone
    else changed it first."""
    try:
        [written] = await ctx.store.commit([_claim_write(ctx, stored, now=now,
                                                         lease_for=lease_for)])
    except WriteConflict:
        return None
    return Claim(stored.id, written.version_id)


def _claim_write(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                 lease_for: timedelta) -> VersionWrite:
    body = body_of(stored)
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    until = now + lease_for
    attempt = replace(lease, attempt=lease.attempt + 1, expires=until)
    return _request_write(ctx, stored, with_lease(body, attempt, occurrence=until), now=now)


async def claimed(ctx: FhirContext, claims: Sequence[Claim]) -> dict[str, StoredResource]:
    """The requests still active at their claimed versions, by id (the others moved on)."""
    versions = {held.id: held.version for held in claims}
    return {stored.id: stored for stored in await ctx.store.read_many(REQUEST, list(versions))
            if stored.version_id == versions[stored.id]
            and body_of(stored).get("status") == "active"}


async def renew(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                lease_for: timedelta) -> StoredResource:
    """Extend the lease to now + `lease_for` (a claim that waited long in the queue); raises
    `WriteConflict` if the request changed since it was read."""
    body = body_of(stored)
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    until = now + lease_for
    return await _write(ctx, stored, with_lease(body, replace(lease, expires=until),
                                                occurrence=until), now=now)


async def defer(ctx: FhirContext, stored: StoredResource, *, until: datetime, now: datetime,
                error: str | None = None, attempted: bool = True) -> None:
    """Release the lease and look at the request again at `until`: after a failed attempt
    (back-off), or without one (`attempted=False`: quiet hours, which use up no attempt)."""
    body = body_of(stored)
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    waiting = replace(lease, expires=None, last_error=error or lease.last_error,
                      attempt=lease.attempt if attempted else max(lease.attempt - 1, 0))
    await _write(ctx, stored, with_lease(body, waiting, occurrence=until), now=now)


async def finish(ctx: FhirContext, stored: StoredResource, *, now: datetime) -> None:
    """This occurrence was delivered before: close it (or arm a repeating request's next)."""
    await _write(ctx, stored, _closed(body_of(stored), now=now, status_when_done="completed"),
                 now=now)


def conclusion(ctx: FhirContext, stored: StoredResource, delivery: Delivery, *,
               earlier: StoredResource | None, now: datetime) -> list[VersionWrite]:
    """The writes, to commit atomically (`commit_groups`), that record `delivery` as a
    Communication (over an `earlier` not-done one) and close the occurrence: `completed`
    after a send, `on-hold` after a failure so staff can fix the address and reactivate it;
    a repeating request arms its next one."""
    body = body_of(stored)
    record = communication(body, delivery)
    closed = _closed(body, now=now,
                     status_when_done="completed" if delivery.sent else "on-hold")
    return [next_version(ctx, record, resource_type="Communication", id=record["id"],
                         current=earlier, now=now, method="PUT" if earlier else "POST"),
            _request_write(ctx, stored, closed, now=now)]


def _closed(body: Resource, *, now: datetime, status_when_done: str) -> Resource:
    """The request after an occurrence: its next one armed, else closed at its due time."""
    lease = lease_of(body) or Lease(due=occurrence_of(body) or now)
    timing = timing_of(body)
    following = next_occurrence(timing, after=lease.due, delivered=lease.delivered + 1) \
        if timing is not None else None
    if following is not None:
        return with_lease(body, Lease(due=following, delivered=lease.delivered + 1),
                          occurrence=following)
    done = with_lease(body, None, occurrence=lease.due)
    done["status"] = status_when_done
    return done


async def revoke(ctx: FhirContext, stored: StoredResource, *, now: datetime,
                 reason: str) -> None:
    """Withdraw a request that no longer makes sense (its appointment was cancelled)."""
    body = body_of(stored)
    revoked = with_lease(body, None, occurrence=(lease_of(body) or Lease(
        due=occurrence_of(body) or now)).due)
    revoked.update(status="revoked", statusReason={"text": reason})
    await _write(ctx, stored, revoked, now=now)


async def recorded_deliveries(ctx: FhirContext,
                              communication_ids: Sequence[str]) -> dict[str, StoredResource]:
    """The Communications already recorded for these occurrences, by id."""
    return {stored.id: stored
            for stored in await ctx.store.read_many("Communication", communication_ids)}


async def _write(ctx: FhirContext, current: StoredResource, body: Resource, *,
                 now: datetime) -> StoredResource:
    [stored] = await ctx.store.commit([_request_write(ctx, current, body, now=now)])
    return stored


def _request_write(ctx: FhirContext, current: StoredResource, body: Resource, *,
                   now: datetime) -> VersionWrite:
    return next_version(ctx, body, resource_type=REQUEST, id=current.id, current=current,
                        now=now, method="PUT")
