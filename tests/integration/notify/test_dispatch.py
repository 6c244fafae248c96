"""Dispatch on each store with recording senders: due messages are leased, sent once and
recorded as Communications; failures back off, fall back and end `not-done`; crashes at any
step neither lose nor repeat a message; repeating follow-ups send every occurrence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.fhir.instants import format_instant
from fhir_server.notify.dispatch import Outcome
from fhir_server.notify.messages import ChannelName, DeliveryFailed, OutboundMessage, Receipt
from fhir_server.scheduling.outbox_records import lease_of, occurrence_of
from fhir_server.services import outbox, outbox_leases, resources
from fhir_server.services.context import FhirContext
from fhir_server.services.outbox_leases import Claim
from fhir_server.services.search import search
from fhir_server.services.slot_claims import body_of
from fhir_server.services.versions import next_version
from fhir_server.services.wiring import make_context
from fhir_server.settings import REPO_ROOT
from fhir_server.store.protocol import Store
from tests.integration.notify.dispatch_support import (
    EMAIL,
    RecordingSender,
    follow_up,
    make_dispatcher,
    patient,
    read_body,
)

NOW = datetime.now(UTC).replace(microsecond=0)
LEASE = timedelta(minutes=2)


@pytest.fixture
async def ctx(store: Store) -> AsyncIterator[FhirContext]:
    context = make_context(store, capability_dir=REPO_ROOT / "capability",
                           base_url="http://testserver/fhir")
    await resources.update(context, "Patient", "p1", patient(), now=NOW)
    yield context


async def claim_one(ctx: FhirContext, now: datetime) -> Claim:
    [held] = await outbox_leases.claim_due(ctx, now=now, lease_for=LEASE, limit=10)
    return held


async def book(ctx: FhirContext, start: datetime) -> str:
    appointment = {"resourceType": "Appointment", "status": "booked",
                   "start": format_instant(start),
                   "end": format_instant(start + timedelta(minutes=30)),
                   "participant": [{"actor": {"reference": "Patient/p1"},
                                    "status": "accepted"}]}
    return (await resources.create(ctx, "Appointment", appointment, now=NOW)).stored.id


async def communications(ctx: FhirContext, status: str) -> list[dict[str, Any]]:
    """The Communications with `status`, as `GET Communication?status=` finds them."""
    result = await search(ctx, "Communication", [("status", status)], now=NOW)
    return [body_of(r) for r in result.matches]


async def test_a_due_message_is_sent_once_and_recorded(ctx: FhirContext) -> None:
    appointment = await book(ctx, NOW + timedelta(days=5))
    email = RecordingSender(ChannelName.EMAIL)
    dispatcher = make_dispatcher(ctx, email)

    held = await claim_one(ctx, NOW)  # only the confirmation is due; reminders come later
    assert await dispatcher.deliver(held, now=NOW) is Outcome.SENT
    assert await outbox_leases.claim_due(ctx, now=NOW + LEASE * 2, lease_for=LEASE,
                                         limit=10) == []

    [message] = email.sent
    assert (message.to, message.idempotency_key) == (
        EMAIL, f"{appointment}/confirmation@{format_instant(NOW)}")
    [record] = await communications(ctx, "completed")
    request = await read_body(ctx, "CommunicationRequest", held.id)
    assert record["basedOn"] == [{"reference": f"CommunicationRequest/{held.id}"}]
    assert record["about"] == [{"reference": f"Appointment/{appointment}"}]
    assert record["medium"][0]["coding"][0]["code"] == "EMAILWRIT"
    assert record["payload"] == [{"contentString": message.text}]
    assert request["status"] == "completed" and lease_of(request) is None
    assert occurrence_of(request) == NOW


async def test_reminders_go_out_at_their_time(ctx: FhirContext) -> None:
    await book(ctx, NOW + timedelta(days=5))
    email = RecordingSender(ChannelName.EMAIL)
    dispatcher = make_dispatcher(ctx, email)
    later = NOW + timedelta(days=5) - timedelta(hours=23)

    claims = await outbox_leases.claim_due(ctx, now=later, lease_for=LEASE, limit=10)
    outcomes = [await dispatcher.deliver(held, now=later) for held in claims]

    assert outcomes == [Outcome.SENT] * 3  # the confirmation, the 72 h and the 24 h reminder
    assert len({m.idempotency_key for m in email.sent}) == 3


async def test_a_claim_lost_to_another_dispatcher_is_dropped(ctx: FhirContext) -> None:
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    [due] = await outbox_leases.due_requests(ctx, now=NOW, limit=10)

    first = await outbox_leases.claim(ctx, due, now=NOW, lease_for=LEASE)
    second = await outbox_leases.claim(ctx, due, now=NOW, lease_for=LEASE)

    assert first is not None and second is None
    assert await outbox_leases.due_requests(ctx, now=NOW + LEASE / 2, limit=10) == []
    assert len(await outbox_leases.due_requests(ctx, now=NOW + LEASE * 2, limit=10)) == 1


async def test_transient_failures_back_off_then_end_not_done(ctx: FhirContext) -> None:
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    email = RecordingSender(ChannelName.EMAIL, failures=[
        DeliveryFailed("421 try later") for _ in range(3)])
    dispatcher = make_dispatcher(ctx, email, max_attempts=3)

    first = await dispatcher.deliver(await claim_one(ctx, NOW), now=NOW)
    retry_at = occurrence_of(await read_body(ctx, "CommunicationRequest", "f1"))
    second = await dispatcher.deliver(await claim_one(ctx, retry_at), now=retry_at)
    third_at = occurrence_of(await read_body(ctx, "CommunicationRequest", "f1"))
    third = await dispatcher.deliver(await claim_one(ctx, third_at), now=third_at)

    assert (first, second, third) == (Outcome.RETRYING, Outcome.RETRYING, Outcome.FAILED)
    assert (retry_at - NOW, third_at - retry_at) == (timedelta(seconds=10),
                                                     timedelta(seconds=40))
    [record] = await communications(ctx, "not-done")
    assert "421 try later" in record["statusReason"]["text"]
    assert record["basedOn"] == [{"reference": "CommunicationRequest/f1"}]
    assert (await read_body(ctx, "CommunicationRequest", "f1"))["status"] == "on-hold"
    assert email.sent == []


async def test_a_permanent_failure_falls_back_to_the_next_channel(ctx: FhirContext) -> None:
    await resources.update(ctx, "Patient", "p1", patient(channels=("sms",)), now=NOW)
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    sms = RecordingSender(ChannelName.SMS, failures=[DeliveryFailed("21211 invalid number",
                                                                    permanent=True)])
    email = RecordingSender(ChannelName.EMAIL)

    outcome = await make_dispatcher(ctx, sms, email).deliver(await claim_one(ctx, NOW), now=NOW)

    assert outcome is Outcome.SENT and len(email.sent) == 1 and sms.sent == []
    [record] = await communications(ctx, "completed")
    assert record["medium"][0]["coding"][0]["code"] == "EMAILWRIT"


class AcceptThenCrash(RecordingSender):
    """The channel accepts the message, then the worker dies before recording it."""

    async def send(self, message: OutboundMessage) -> Receipt:
        await super().send(message)
        raise SystemExit("worker killed")


async def test_a_crash_after_the_channel_accepted_resends_with_the_same_key(
        ctx: FhirContext) -> None:
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    crashing = AcceptThenCrash(ChannelName.EMAIL)
    email = RecordingSender(ChannelName.EMAIL)

    with pytest.raises(SystemExit):
        await make_dispatcher(ctx, crashing).deliver(await claim_one(ctx, NOW), now=NOW)
    assert await outbox_leases.due_requests(ctx, now=NOW + LEASE / 2, limit=10) == []
    after_lease = NOW + LEASE * 2
    outcome = await make_dispatcher(ctx, email).deliver(await claim_one(ctx, after_lease),
                                                        now=after_lease)

    assert outcome is Outcome.SENT
    assert crashing.sent[0].idempotency_key == email.sent[0].idempotency_key
    assert len(await communications(ctx, "completed")) == 1


async def test_an_occurrence_already_recorded_is_never_sent_again(ctx: FhirContext) -> None:
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    email = RecordingSender(ChannelName.EMAIL)
    dispatcher = make_dispatcher(ctx, email)
    await dispatcher.deliver(await claim_one(ctx, NOW), now=NOW)
    reactivated = {**await read_body(ctx, "CommunicationRequest", "f1"), "status": "active"}
    await resources.update(ctx, "CommunicationRequest", "f1", reactivated, now=NOW)

    outcome = await dispatcher.deliver(await claim_one(ctx, NOW), now=NOW)

    assert outcome is Outcome.ALREADY_SENT and len(email.sent) == 1
    assert (await read_body(ctx, "CommunicationRequest", "f1"))["status"] == "completed"


async def test_attempts_lost_to_crashes_count(ctx: FhirContext) -> None:
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    crashing = AcceptThenCrash(ChannelName.EMAIL)
    at = NOW
    for _ in range(2):
        with pytest.raises(SystemExit):
            await make_dispatcher(ctx, crashing, max_attempts=2).deliver(
                await claim_one(ctx, at), now=at)
        at += LEASE * 2

    outcome = await make_dispatcher(ctx, crashing, max_attempts=2).deliver(
        await claim_one(ctx, at), now=at)

    assert outcome is Outcome.FAILED
    [record] = await communications(ctx, "not-done")
    assert "worker lost" in record["statusReason"]["text"]


async def test_quiet_hours_defer_a_message_to_their_end(ctx: FhirContext) -> None:
    await resources.update(ctx, "Patient", "p1", patient(quiet=("00:00:00", "23:59:00")),
                           now=NOW)
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    email = RecordingSender(ChannelName.EMAIL)

    outcome = await make_dispatcher(ctx, email).deliver(await claim_one(ctx, NOW), now=NOW)

    request = await read_body(ctx, "CommunicationRequest", "f1")
    assert outcome is Outcome.DEFERRED and email.sent == []
    assert occurrence_of(request) == NOW.replace(hour=23, minute=59, second=0)
    assert lease_of(request).due == NOW  # the occurrence keeps its identity


async def test_a_repeating_follow_up_sends_each_occurrence_until_its_count(
        ctx: FhirContext) -> None:
    timing = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "count": 3}}
    await resources.update(ctx, "CommunicationRequest", "f1",
                           follow_up("f1", NOW, timing=timing), now=NOW)
    email = RecordingSender(ChannelName.EMAIL)
    dispatcher = make_dispatcher(ctx, email)

    for day in range(3):
        at = NOW + timedelta(days=day)
        assert await dispatcher.deliver(await claim_one(ctx, at), now=at) is Outcome.SENT
        assert await outbox_leases.due_requests(ctx, now=at + timedelta(hours=23),
                                                limit=10) == []

    request = await read_body(ctx, "CommunicationRequest", "f1")
    assert request["status"] == "completed"
    assert len({m.idempotency_key for m in email.sent}) == 3
    assert len(await communications(ctx, "completed")) == 3


async def test_a_reminder_whose_appointment_was_cancelled_behind_its_back_is_revoked(
        ctx: FhirContext) -> None:
    appointment = await book(ctx, NOW + timedelta(days=5))
    current = await ctx.store.read("Appointment", appointment)
    assert current is not None
    cancelled = {**body_of(current), "status": "cancelled"}
    await ctx.store.commit([next_version(ctx, cancelled, resource_type="Appointment",
                                         id=appointment, current=current, now=NOW,
                                         method="PUT")])  # no outbox hook ran
    email = RecordingSender(ChannelName.EMAIL)

    outcome = await make_dispatcher(ctx, email).deliver(await claim_one(ctx, NOW), now=NOW)

    assert outcome is Outcome.REVOKED and email.sent == []


async def test_reconcile_plans_for_a_booking_whose_planning_failed(ctx: FhirContext) -> None:
    appointment = {"resourceType": "Appointment", "status": "booked",
                   "start": format_instant(NOW + timedelta(days=5)),
                   "end": format_instant(NOW + timedelta(days=5, minutes=30)),
                   "participant": [{"actor": {"reference": "Patient/p1"},
                                    "status": "accepted"}]}
    await ctx.store.commit([next_version(ctx, appointment, resource_type="Appointment",
                                         id="a1", current=None, now=NOW, method="POST")])

    repaired = await outbox.reconcile(ctx, now=NOW, window=timedelta(hours=1))
    again = await outbox.reconcile(ctx, now=NOW, window=timedelta(hours=1))

    assert (repaired, again) == (1, 0)
    requests = await outbox.requests_about(ctx, "Appointment/a1", now=NOW)
    assert len(requests) == 4


async def test_a_claim_that_waited_past_its_lease_is_dropped_once_another_took_over(
        ctx: FhirContext) -> None:
    await resources.update(ctx, "CommunicationRequest", "f1", follow_up("f1", NOW), now=NOW)
    email = RecordingSender(ChannelName.EMAIL)
    dispatcher = make_dispatcher(ctx, email)
    stale = await claim_one(ctx, NOW)
    late = NOW + LEASE * 2
    fresh = await claim_one(ctx, late)

    assert await dispatcher.deliver(stale, now=late) is Outcome.SKIPPED
    assert await dispatcher.deliver(fresh, now=late + LEASE * 3 / 4) is Outcome.SENT
    assert len(email.sent) == 1


async def test_a_batch_shares_its_reads_and_its_commit(ctx: FhirContext,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)  # deliver_all reads the clock: claims must be fresh, not NOW
    for n in range(5):
        await resources.update(ctx, "CommunicationRequest", f"f{n}", follow_up(f"f{n}", now),
                               now=now)
    claims = await outbox_leases.claim_due(ctx, now=now, lease_for=LEASE, limit=10)
    moved = next(held for held in claims if held.id == "f3")
    stored = await ctx.store.read("CommunicationRequest", "f3")
    assert stored is not None
    await ctx.store.commit([next_version(ctx, body_of(stored), resource_type="CommunicationRequest",
                                         id="f3", current=stored, now=now, method="PUT")])
    commits = count_calls(monkeypatch, ctx.store, "commit")
    reads = count_calls(monkeypatch, ctx.store, "read")
    email = RecordingSender(ChannelName.EMAIL)

    outcomes = await make_dispatcher(ctx, email).deliver_all(claims)

    assert [o for held, o in zip(claims, outcomes, strict=True) if held is not moved] == \
        [Outcome.SENT] * 4
    assert outcomes[claims.index(moved)] is Outcome.SKIPPED  # someone moved it after the claim
    assert commits == [1] and reads == [0]
    assert len(await communications(ctx, "completed")) == 4


def count_calls(monkeypatch: pytest.MonkeyPatch, store: Store, name: str) -> list[int]:
    """A one-element list counting calls of the store's method `name`."""
    calls = [0]
    original = getattr(store, name)

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, name, counting)
    return calls
