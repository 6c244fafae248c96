"""Deliver leased CommunicationRequests over the recipients' channels, each exactly once.

Steps, each a version-checked write on the request (`services.outbox_leases`):
1. the scan claimed the request (lease until now + dispatch_lease_s); delivery re-reads it at
   that version, or drops the work (someone moved, revoked or re-claimed it);
2. if a `completed` Communication for this occurrence exists (the request was reactivated
   after it was sent), close the request and stop;
3. a request whose appointment no longer wants it (cancelled before a reminder) is revoked;
   during the recipient's quiet hours it is deferred to their end;
4. the claim counted the attempt (attempt + 1) before anything is sent; a claim that waited in
   the queue for more than half its lease renews it first (version-checked);
5. the message is composed and sent, trying the plan's channels in order: a permanent failure
   moves on to the next channel at once, a transient one is retried with exponential back-off
   (`dispatch_interval_s * 4^(attempt-1)`), and the last attempt tries every channel;
6. the outcome is recorded as a Communication (id and identifier = the delivery key) and the
   request closed (or its next occurrence armed) atomically.

A batch of claims (one task) is read with one query per resource type and sent
concurrently; step 6 is a group commit (the pairs of the deliveries finishing together share
a transaction, each pair atomic). A pair that lost a race to another writer is dropped: its
message went out unrecorded, as if the worker had died before step 6.

Why nothing is lost and nothing is sent twice: the store is the source of truth and every
broker message is only a hint. A worker killed anywhere leaves the lease to lapse; the next
scan claims the request again (a lost or duplicated task message changes nothing, because a
stale claim fails step 1). A crash before step 5 sends nothing. A crash after the channel
accepted the message but before step 6 makes the next attempt send it again, with the same
delivery key `<request key>@<due>`: email derives its Message-ID from it, the SMS/voice
provider gets it as its idempotency token, so the recipient's side sees one message. Once
step 6 committed, nothing sends the occurrence again (steps 1 and 2). Two workers never
send at once: a lease is claimed with a version-checked write, only its holder renews it, and
a send starts only with at least half the lease left, far more than senders' timeouts.
Attempts lost to crashes count too: a request that crashes its worker every time ends as
`not-done` after `dispatch_max_attempts`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from fhir_server.notify import metrics
from fhir_server.notify.group_commit import GroupCommit
from fhir_server.notify.messages import (
    ChannelName,
    ChannelPlan,
    DeliveryFailed,
    Links,
    MessageKind,
    OutboundMessage,
    Receipt,
    Sender,
)
from fhir_server.notify.records import DirectoryCache, Records, body
from fhir_server.scheduling.outbox_records import (
    Delivery,
    Lease,
    delivery_key,
    kind_of,
    lease_of,
    medium_channel,
    occurrence_of,
    reference_of,
    resource_id_for,
)
from fhir_server.scheduling.state_machine import BOOKED, PROPOSED
from fhir_server.services import outbox_leases as leases
from fhir_server.services.context import FhirContext
from fhir_server.services.outbox_leases import Claim
from fhir_server.store.protocol import StoredResource, WriteConflict

log = logging.getLogger("fhir_server.notify")

Resource = dict[str, Any]
MAX_BACKOFF = timedelta(hours=6)
_WANTS_STATUS = {MessageKind.CONFIRMATION: BOOKED, MessageKind.CHANGE: BOOKED,
                 MessageKind.REMINDER: BOOKED, MessageKind.PROPOSAL: PROPOSED}


class Composer(Protocol):
    """`notify.content.compose`: the message a request asks for, for one channel."""

    def __call__(self, records: Records, request: Mapping[str, Any], *, channel: ChannelName,
                 to: str, language: str, links: Links,
                 idempotency_key: str) -> Awaitable[OutboundMessage]: ...


Planner = Callable[..., ChannelPlan]


class Outcome(StrEnum):
    """What delivering one claim did."""

    SENT = "sent"
    ALREADY_SENT = "already-sent"
    RETRYING = "retrying"
    DEFERRED = "deferred"
    FAILED = "failed"
    REVOKED = "revoked"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """Lease length, attempts, back-off base and the language when a patient states none."""

    lease_for: timedelta
    max_attempts: int
    backoff_base: timedelta
    default_language: str

    def backoff(self, attempt: int) -> timedelta:
        return min(self.backoff_base * 4 ** max(attempt - 1, 0), MAX_BACKOFF)


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A request still at its claimed version, with what delivering it reads."""

    stored: StoredResource
    request: Resource
    lease: Lease
    earlier: StoredResource | None  # the Communication recorded for this occurrence
    known: Mapping[str, Resource | None]  # its Appointment and recipient, by reference


@dataclass(frozen=True, slots=True)
class _Sent:
    message: OutboundMessage
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class _Failed:
    reason: str
    transient: bool


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """Everything delivery needs, built once per worker process."""

    ctx: FhirContext
    senders: Mapping[ChannelName, Sender]
    links: Links
    compose: Composer
    plan_channels: Planner
    policy: DispatchPolicy
    directory: DirectoryCache = field(default_factory=DirectoryCache)
    recorder: GroupCommit = field(default_factory=GroupCommit)

    async def deliver_all(self, claims: Sequence[Claim]) -> list[Outcome]:
        """Deliver a batch concurrently (channel I/O overlaps); one failure stops none."""
        now = datetime.now(UTC)
        found = await self._read(claims, now=now)
        results = await asyncio.gather(*(self._deliver(found.get(held.id), now=now)
                                         for held in claims), return_exceptions=True)
        outcomes = []
        for held, result in zip(claims, results, strict=True):
            if isinstance(result, BaseException):
                log.error("event=notify.deliver_crashed request=CommunicationRequest/%s",
                          held.id, exc_info=result)
                result = Outcome.SKIPPED  # its lease lapses and the next scan retries it
            outcomes.append(result)
        return outcomes

    async def deliver(self, held: Claim, *, now: datetime) -> Outcome:
        """Deliver one claimed request (see the module docstring); never sends twice."""
        return await self._deliver((await self._read([held], now=now)).get(held.id), now=now)

    async def _read(self, claims: Sequence[Claim], *, now: datetime) -> dict[str, _Claimed]:
        """Step 1 for a batch, and what the deliveries read: one query per resource type."""
        stored = await leases.claimed(self.ctx, claims)
        requests = {id: body(s) for id, s in stored.items()}
        leased = {id: lease_of(r) or Lease(due=occurrence_of(r) or now)
                  for id, r in requests.items()}
        keys = {id: resource_id_for(delivery_key(r, leased[id].due))
                for id, r in requests.items()}
        earlier = await leases.recorded_deliveries(self.ctx, list(keys.values()))
        wanted = {id: (reference_of(r.get("about")), _recipient(r)) for id, r in requests.items()}
        read = await self._read_references({ref for refs in wanted.values() for ref in refs})
        return {id: _Claimed(stored[id], requests[id], leased[id], earlier.get(keys[id]),
                             {ref: read[ref] for ref in wanted[id] if ref in read})
                for id in requests}

    async def _deliver(self, claimed: _Claimed | None, *, now: datetime) -> Outcome:
        if claimed is None:
            return Outcome.SKIPPED
        with self.recorder.member():
            return await self._deliver_claimed(claimed, now=now)

    async def _deliver_claimed(self, claimed: _Claimed, *, now: datetime) -> Outcome:
        """Steps 2 and 3 of the module docstring, then the attempt."""
        stored, request, earlier = claimed.stored, claimed.request, claimed.earlier
        if earlier is not None and body(earlier).get("status") == "completed":
            await leases.finish(self.ctx, stored, now=now)
            return Outcome.ALREADY_SENT
        kind = kind_of(request)
        appointment = claimed.known.get(reference_of(request.get("about")) or "")
        unwanted = _unwanted(kind, appointment)
        if unwanted is not None:
            await leases.revoke(self.ctx, stored, now=now, reason=unwanted)
            return Outcome.REVOKED
        plan = self.plan_channels(claimed.known.get(_recipient(request) or ""),
                                  available=frozenset(self.senders), kind=kind,
                                  now=now.astimezone(), same_day=_same_day(appointment, now),
                                  default_language=self.policy.default_language)
        if plan.not_before is not None and plan.not_before > now:
            await leases.defer(self.ctx, stored, until=plan.not_before, now=now,
                               attempted=False)
            return Outcome.DEFERRED
        return await self._attempt(claimed, plan, now=now)

    async def _attempt(self, claimed: _Claimed, plan: ChannelPlan, *, now: datetime) -> Outcome:
        """Steps 4 to 6 of the module docstring: send, then record the outcome."""
        stored, request, lease = claimed.stored, claimed.request, claimed.lease
        key, kind, attempt = delivery_key(request, lease.due), kind_of(request), lease.attempt
        if attempt > self.policy.max_attempts:
            return await self._give_up(claimed, key, kind, attempt - 1, now=now,
                                       reason="no attempt finished (worker lost)")
        if lease.expires is None or lease.expires - now < self.policy.lease_for / 2:
            try:  # queued for long: make sure the lease outlasts the send
                claimed = replace(claimed, stored=await leases.renew(
                    self.ctx, stored, now=now, lease_for=self.policy.lease_for))
            except WriteConflict:
                return Outcome.SKIPPED
        last = attempt >= self.policy.max_attempts
        result = await self._send(claimed, plan, key, last_attempt=last)
        if isinstance(result, _Sent):
            if not await self._record(claimed, Delivery(
                    key, result.receipt.accepted_at, result.message.channel,
                    result.message.text, provider_id=result.receipt.provider_id), now=now):
                return Outcome.SKIPPED
            metrics.sent(kind=kind, channel=result.message.channel,
                         lag_s=(result.receipt.accepted_at - lease.due).total_seconds())
            return Outcome.SENT
        if result.transient and not last:
            metrics.retried(kind=kind, request_id=stored.id, attempt=attempt,
                            reason=result.reason)
            await leases.defer(self.ctx, claimed.stored,
                               until=now + self.policy.backoff(attempt), now=now,
                               error=result.reason)
            return Outcome.RETRYING
        return await self._give_up(claimed, key, kind, attempt, now=now, reason=result.reason)

    async def _send(self, claimed: _Claimed, plan: ChannelPlan, key: str, *,
                    last_attempt: bool) -> _Sent | _Failed:
        """Try the channels in order: a permanent failure (or any on the last attempt) moves
        on to the next, a transient one stops for a retry."""
        reasons: list[str] = []
        transient = False
        records = Records(self.ctx, claimed.known, self.directory)
        for channel in _channels(plan, medium_channel(claimed.request)):
            address = plan.addresses.get(channel)
            if address is None or channel not in self.senders:
                continue
            try:
                message = await self.compose(records, claimed.request, channel=channel,
                                             to=address, language=plan.language,
                                             links=self.links, idempotency_key=key)
                return _Sent(message, await self.senders[channel].send(message))
            except DeliveryFailed as failure:
                reasons.append(f"{channel}: {failure.reason}")
                if not failure.permanent:
                    transient = True
                    if not last_attempt:
                        break
        if not reasons:
            reasons.append("the recipient has no address on any configured channel")
        return _Failed("; ".join(reasons), transient)

    async def _give_up(self, claimed: _Claimed, key: str, kind: MessageKind, attempts: int, *,
                       now: datetime, reason: str) -> Outcome:
        summary = " ".join(str(p.get("contentString", ""))
                           for p in claimed.request.get("payload", ()))
        if not await self._record(claimed, Delivery(
                key, None, None, summary or "(no content)",
                reason=f"{reason} (after {attempts} attempts)",
                reason_code="system-error" if attempts else "recipient-unavailable"),
                now=now):
            return Outcome.SKIPPED
        metrics.delivery_failed(kind=kind, request_id=claimed.stored.id, attempts=attempts,
                                reason=reason)
        return Outcome.FAILED

    async def _record(self, claimed: _Claimed, delivery: Delivery, *, now: datetime) -> bool:
        """Step 6 (group-committed); False if the request or its record changed meanwhile."""
        writes = leases.conclusion(self.ctx, claimed.stored, delivery, earlier=claimed.earlier,
                                   now=now)
        if await self.recorder.commit(self.ctx, writes):
            return True
        log.warning("event=notify.record_conflict request=CommunicationRequest/%s key=%s",
                    claimed.stored.id, delivery.key)
        return False

    async def _read_references(self, references: set[str | None]) -> dict[str, Resource | None]:
        """`Type/id` references read with one query per type; None for the absent ones."""
        by_type: dict[str, list[str]] = {}
        for reference in references:
            if reference is not None and reference.count("/") == 1:
                resource_type, id = reference.split("/")
                by_type.setdefault(resource_type, []).append(id)
        read: dict[str, Resource | None] = {}
        for resource_type, ids in by_type.items():
            found = {s.id: body(s) for s in await self.ctx.store.read_many(resource_type, ids)}
            read.update((f"{resource_type}/{id}", found.get(id)) for id in ids)
        return read


def _channels(plan: ChannelPlan, explicit: ChannelName | None) -> Sequence[ChannelName]:
    """The plan's order, with a channel the request names explicitly tried first."""
    if explicit is None or explicit not in plan.channels:
        return plan.channels
    return (explicit, *(c for c in plan.channels if c != explicit))


def _recipient(request: Mapping[str, Any]) -> str | None:
    recipient = reference_of(request.get("recipient"))
    if recipient is not None and recipient.startswith("Patient/"):
        return recipient
    return reference_of(request.get("subject"))


def _unwanted(kind: MessageKind, appointment: Mapping[str, Any] | None) -> str | None:
    """Why an appointment message no longer makes sense (the outbox missed a change)."""
    wanted = _WANTS_STATUS.get(kind)
    if wanted is None:
        return None
    status = appointment.get("status") if appointment is not None else "gone"
    return None if status == wanted else f"the appointment is {status}"


def _same_day(appointment: Mapping[str, Any] | None, now: datetime) -> bool:
    start = (appointment or {}).get("start")
    if not isinstance(start, str):
        return False
    local = now.astimezone()
    return datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(
        local.tzinfo).date() == local.date()
