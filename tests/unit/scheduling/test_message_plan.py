"""The outbox plan: which messages an appointment change creates, moves and revokes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.notify.messages import MessageKind
from fhir_server.scheduling.message_plan import (
    ExistingRequest,
    MessagePlan,
    plan_messages,
    reminder_key,
    request_key,
)
from fhir_server.scheduling.slot_hold import with_replaces

NOW = datetime(2030, 3, 1, 12, tzinfo=UTC)
OFFSETS = (72.0, 24.0, 2.0)


def appointment(status: str = "booked", start: datetime = NOW + timedelta(days=5),
                **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": status,
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
            "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"},
                            {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"}],
            **extra}


def plan(previous: dict[str, Any] | None, current: dict[str, Any] | None,
         existing: Sequence[ExistingRequest] = (), version: int = 2) -> MessagePlan:
    return plan_messages(previous, current, appointment_id="a1", version=version,
                         existing=existing, now=NOW, offsets_h=OFFSETS)


def stored(plan_: MessagePlan, status: str = "active") -> list[ExistingRequest]:
    """The requests a plan created, as the next planning sees them."""
    return [ExistingRequest(f"id-{n.key}", n.key, n.kind, status, n.when) for n in plan_.create]


def test_booking_confirms_at_once_and_reminds_at_each_offset() -> None:
    created = plan(None, appointment(), version=1).create

    assert [(n.kind, n.when) for n in created] == [
        (MessageKind.CONFIRMATION, NOW),
        (MessageKind.REMINDER, NOW + timedelta(days=5) - timedelta(hours=72)),
        (MessageKind.REMINDER, NOW + timedelta(days=5) - timedelta(hours=24)),
        (MessageKind.REMINDER, NOW + timedelta(days=5) - timedelta(hours=2)),
    ]
    assert {n.patient for n in created} == {"Patient/p1"}
    assert created[1].key == "a1/reminder/72h"


def test_offsets_already_past_at_booking_are_skipped() -> None:
    soon = appointment(start=NOW + timedelta(hours=30))

    reminders = [n for n in plan(None, soon).create if n.kind is MessageKind.REMINDER]

    assert [n.key for n in reminders] == [reminder_key("a1", 24), reminder_key("a1", 2)]


def test_planning_the_same_state_twice_creates_nothing_new() -> None:
    first = plan(None, appointment(), version=1)

    assert not plan(None, appointment(), stored(first))


def test_reschedule_moves_pending_reminders_and_sends_a_change_once_confirmed() -> None:
    first = plan(None, appointment(), version=1)
    existing = stored(first)
    existing[0] = ExistingRequest(existing[0].id, existing[0].key, existing[0].kind,
                                  "completed", NOW)  # the confirmation went out
    later = NOW + timedelta(days=9)

    moved = plan(appointment(), appointment(start=later), existing, version=3)

    assert [(r.key, when) for r, when in moved.move] == [
        (reminder_key("a1", h), later - timedelta(hours=h)) for h in OFFSETS]
    assert [(n.kind, n.key) for n in moved.create] == [(MessageKind.CHANGE, "a1/change/v3")]


def test_reschedule_before_the_confirmation_went_out_sends_no_change() -> None:
    first = plan(None, appointment(), version=1)

    moved = plan(appointment(), appointment(start=NOW + timedelta(days=9)), stored(first))

    assert moved.create == ()


def test_reschedule_closer_revokes_reminders_whose_time_passed_and_adds_none() -> None:
    existing = stored(plan(None, appointment(), version=1))

    moved = plan(appointment(), appointment(start=NOW + timedelta(hours=10)), existing)

    assert {r.key for r in moved.revoke} == {reminder_key("a1", 72), reminder_key("a1", 24)}
    assert [r.key for r, _ in moved.move] == [reminder_key("a1", 2)]


def test_cancelling_revokes_every_pending_request_and_sends_a_notice() -> None:
    existing = stored(plan(None, appointment(), version=1))

    cancelled = plan(appointment(), appointment("cancelled"), existing)

    assert {r.key for r in cancelled.revoke} == {r.key for r in existing}
    assert [n.kind for n in cancelled.create] == [MessageKind.CANCELLATION]


def test_deleting_a_booked_appointment_is_a_cancellation() -> None:
    existing = stored(plan(None, appointment(), version=1))

    deleted = plan(appointment(), None, existing)

    assert len(deleted.revoke) == 4
    assert [n.key for n in deleted.create] == [request_key("a1", MessageKind.CANCELLATION)]


def test_a_past_appointment_cancelled_gets_no_notice() -> None:
    past = appointment(start=NOW - timedelta(days=1))

    assert plan(past, appointment("cancelled", start=NOW - timedelta(days=1))).create == ()


def test_a_proposed_follow_up_asks_the_patient_to_book_and_booking_revokes_the_ask() -> None:
    proposed = appointment("proposed", requestedPeriod=[{"start": "2030-04-01"}])

    asked = plan(None, proposed, version=1)
    booked = plan(proposed, appointment(), stored(asked))

    assert [n.kind for n in asked.create] == [MessageKind.PROPOSAL]
    assert [r.kind for r in booked.revoke] == [MessageKind.PROPOSAL]
    assert MessageKind.CONFIRMATION in {n.kind for n in booked.create}


def test_a_replacement_announces_a_change_not_a_new_booking() -> None:
    replacement = with_replaces(appointment(), "old")

    [first, *_] = plan(None, replacement, version=1).create

    assert (first.kind, first.key) == (MessageKind.CHANGE, "a1/confirmation")


def test_arrival_revokes_pending_reminders_only() -> None:
    existing = stored(plan(None, appointment(), version=1))

    arrived = plan(appointment(), appointment("arrived"), existing)

    assert {r.kind for r in arrived.revoke} == {MessageKind.REMINDER}


def test_no_patient_no_messages() -> None:
    staff_only = appointment()
    staff_only["participant"] = staff_only["participant"][1:]

    assert not plan(None, staff_only, version=1)
