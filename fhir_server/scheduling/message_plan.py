"""Which messages an Appointment change calls for: the outbox plan, as pure data.

Given the appointment before and after a write, the outbox requests that already exist for it,
the clock and the reminder offsets, `plan_messages` says which CommunicationRequests to create,
which pending ones to move to a new time and which to revoke:

- booked, starting in the future: a confirmation (at once; a change notice for an appointment
  that replaces another) and one reminder per offset still ahead; a reschedule moves the
  pending reminders to the new time (revoking those whose new time has passed), adds the ones
  now ahead, and sends a change notice once the confirmation is out; a pending proposal is
  revoked;
- proposed with a `requestedPeriod`: a "please book" proposal (at once);
- arrived or checked-in: pending reminders are revoked;
- cancelled, no-show, fulfilled, entered-in-error or deleted: every pending request is revoked,
  and a booked future appointment that was cancelled or deleted gets a cancellation notice.
Each request has a stable key `<appointment-id>/<kind>/<offset or version>`, so planning the
same change twice (a retry, or the repair scan) plans nothing new. A reminder already sent is
not sent again after a reschedule: the change notice carries the new time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.instants import parse_instant
from fhir_server.notify.messages import MessageKind
from fhir_server.scheduling.slot_hold import replaced_id
from fhir_server.scheduling.state_machine import (
    ARRIVED,
    BOOKED,
    CANCELLED,
    CHECKED_IN,
    FINAL_STATES,
    PROPOSED,
)

ACTIVE = "active"
_SUMMARIES = {
    MessageKind.CONFIRMATION: "Appointment confirmed for {start}",
    MessageKind.CHANGE: "Appointment changed: now {start}",
    MessageKind.CANCELLATION: "Appointment on {start} cancelled",
    MessageKind.REMINDER: "Reminder: appointment on {start}",
    MessageKind.PROPOSAL: "Please book your follow-up appointment ({start})",
}


@dataclass(frozen=True, slots=True)
class ExistingRequest:
    """An outbox request already stored for the appointment; `due` is its intended time."""

    id: str
    key: str
    kind: MessageKind
    status: str
    due: datetime | None


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A CommunicationRequest to create: what, when, about which appointment, for whom."""

    key: str
    kind: MessageKind
    when: datetime
    appointment_id: str
    patient: str
    summary: str


@dataclass(frozen=True, slots=True)
class MessagePlan:
    """What to write: new requests, pending ones to move to a new time, ones to revoke."""

    create: tuple[NewRequest, ...] = ()
    move: tuple[tuple[ExistingRequest, datetime], ...] = ()
    revoke: tuple[ExistingRequest, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.move or self.revoke)


def request_key(appointment_id: str, kind: MessageKind, suffix: str = "") -> str:
    """`<appointment-id>/<kind>[/<offset or version>]`, the outbox identifier's value."""
    return f"{appointment_id}/{kind.value}" + (f"/{suffix}" if suffix else "")


def reminder_key(appointment_id: str, offset_h: float) -> str:
    """The key of the reminder `offset_h` hours before the appointment."""
    return request_key(appointment_id, MessageKind.REMINDER, f"{offset_h:g}h")


def patient_of(appointment: Mapping[str, Any]) -> str | None:
    """The first participant that is a Patient, as `Patient/<id>`."""
    for participant in appointment.get("participant", ()):
        reference = (participant.get("actor") or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference
    return None


def plan_messages(previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None, *,
                  appointment_id: str, version: int, existing: Sequence[ExistingRequest],
                  now: datetime, offsets_h: Sequence[float]) -> MessagePlan:
    """The outbox writes for the move from `previous` to `current` (None: deleted or new)."""
    body = current if current is not None else previous
    patient = patient_of(body) if body is not None else None
    if body is None or patient is None:
        return MessagePlan()
    facts = _Facts(appointment_id, patient, _start(body), now,
                   {request.key: request for request in existing})
    status = current.get("status") if current is not None else None
    pending = [request for request in existing if request.status == ACTIVE]
    if status == BOOKED:
        assert current is not None
        return _booked(facts, previous, current, version, pending, offsets_h)
    if status == PROPOSED:
        proposal = facts.new(MessageKind.PROPOSAL, now) if current and current.get(
            "requestedPeriod") else None
        return MessagePlan(create=(proposal,) if proposal else ())
    if status in (ARRIVED, CHECKED_IN):
        return MessagePlan(revoke=tuple(r for r in pending if r.kind is MessageKind.REMINDER))
    if status is None or status in FINAL_STATES:
        was_booked = previous is not None and previous.get("status") == BOOKED
        notice = facts.new(MessageKind.CANCELLATION, now) if (
            status in (None, CANCELLED) and was_booked and facts.ahead()) else None
        return MessagePlan(create=(notice,) if notice else (), revoke=tuple(pending))
    return MessagePlan()  # pending or waitlist: nothing to tell yet


@dataclass(frozen=True, slots=True)
class _Facts:
    """What every rule needs about the appointment, and the keys already used."""

    appointment_id: str
    patient: str
    start: datetime | None
    now: datetime
    by_key: Mapping[str, ExistingRequest]

    def ahead(self) -> bool:
        return self.start is not None and self.start > self.now

    def new(self, kind: MessageKind, when: datetime, suffix: str = "",
            key: str | None = None) -> NewRequest | None:
        """A new request unless its key is taken."""
        key = key or request_key(self.appointment_id, kind, suffix)
        if key in self.by_key:
            return None
        start = self.start.isoformat() if self.start else "a time to be agreed"
        return NewRequest(key, kind, when, self.appointment_id, self.patient,
                          _SUMMARIES[kind].format(start=start))


def _booked(facts: _Facts, previous: Mapping[str, Any] | None, current: Mapping[str, Any],
            version: int, pending: Sequence[ExistingRequest],
            offsets_h: Sequence[float]) -> MessagePlan:
    create: list[NewRequest | None] = []
    move: list[tuple[ExistingRequest, datetime]] = []
    revoke = [r for r in pending if r.kind is MessageKind.PROPOSAL]
    if facts.ahead():
        confirmation_key = request_key(facts.appointment_id, MessageKind.CONFIRMATION)
        kind = MessageKind.CHANGE if replaced_id(current) else MessageKind.CONFIRMATION
        create.append(facts.new(kind, facts.now, key=confirmation_key))
        confirmation = facts.by_key.get(confirmation_key)
        if confirmation is not None and confirmation.status != ACTIVE and _moved(previous,
                                                                                 current):
            create.append(facts.new(MessageKind.CHANGE, facts.now, f"v{version}"))
    for offset in offsets_h:
        key = reminder_key(facts.appointment_id, offset)
        when = facts.start - timedelta(hours=offset) if facts.start else None
        stored = facts.by_key.get(key)
        if stored is None:
            if when is not None and when > facts.now:
                create.append(facts.new(MessageKind.REMINDER, when, key=key))
        elif stored.status == ACTIVE and when != stored.due:
            if when is None or when <= facts.now:
                revoke.append(stored)
            else:
                move.append((stored, when))
    return MessagePlan(create=tuple(c for c in create if c is not None), move=tuple(move),
                       revoke=tuple(revoke))


def _moved(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether a booked appointment changed its time."""
    return previous is not None and previous.get("status") == BOOKED and (
        previous.get("start") != current.get("start") or previous.get("end") != current.get(
            "end"))


def _start(appointment: Mapping[str, Any]) -> datetime | None:
    value = appointment.get("start")
    return parse_instant(value) if isinstance(value, str) else None
