"""Booking use cases: book, hold, confirm, change status, reschedule, replace, crash recovery.

Every path that makes an Appointment occupy time runs `_take_time`:
1. claim each referenced Slot not already firmly ours (sorted by id; `slot_claims.py`),
   as busy-tentative with a short claim hold (`CLAIM_TTL`), so a crash mid-booking frees
   itself once the hold lapses and `recover` runs;
2. check that no participant has another active appointment overlapping [start, end) that
   slots do not already account for (one search; catches bookings without slots);
3. write the Appointment, expecting the version it was prepared against;
4. finalize the claimed slots: busy for booked/arrived/checked-in; for pending they stay
   busy-tentative, held until `hold_until` (`hold`: now + hold_for; `book` of a pending
   appointment: until the appointment ends, since a pending appointment waits on participant
   replies that may take days);
5. free the slots the appointment no longer references.
A failure before step 3 releases every claim and writes nothing else; a failure in step 4
also undoes the appointment version. Moves that release time write the appointment first and
then free its slots, so a crash in between can waste a slot but never double-book one.

`replace` (Argonaut `cancelled-appt-id`) books a new appointment marked `replaces` the old one:
it claims and checks as above (ignoring the old appointment in the overlap check), writes the
new one, cancels the old one, and only then finalizes the new slots. A crash after the write
leaves the new slots under a lapsing claim, so `recover` finds the new appointment through them
and cancels the old one before it finalizes (a slotless replacement has no such trail).

Emergency-reserved slots without `may_use_emergency` are refused with 409 (the slot is not
available to this caller, as `$find` would not have offered it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.errors import BusinessRuleViolation, Conflict, FhirError, VersionConflict
from fhir_server.fhir.instants import parse_instant
from fhir_server.scheduling.slot_hold import (
    Claim,
    replaced_id,
    slot_ids,
    with_overbooking_reason,
    with_replaces,
)
from fhir_server.scheduling.state_machine import (
    BOOKED,
    CANCELLED,
    PENDING,
    check_transition,
    holds_time,
    releases_slots,
)
from fhir_server.services import resources
from fhir_server.services.actor_overlaps import check_actor_overlaps
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import (
    ClaimedSlot,
    Window,
    body_of,
    claim_slots,
    finalize_claims,
    free_slots,
    release_claims,
)
from fhir_server.services.versions import new_id, next_version, tombstone
from fhir_server.store.protocol import HistoryMethod, StoredResource, WriteConflict

log = logging.getLogger("fhir_server.booking")

DEFAULT_HOLD = timedelta(minutes=10)
CLAIM_TTL = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class BookingOptions:
    """Overrides a privileged caller may use: emergency-reserved slots, overbooking."""

    may_use_emergency: bool = False
    overbook_reason: str | None = None


async def book(ctx: FhirContext, appointment: dict[str, Any], *, now: datetime,
               options: BookingOptions = BookingOptions(),
               appointment_id: str | None = None) -> StoredResource:
    """Create a time-holding Appointment over its Slots, or raise Conflict (409) leaving nothing."""
    if not holds_time(appointment.get("status")):
        raise BusinessRuleViolation("Only a pending, booked, arrived or checked-in Appointment "
                                    "is booked", expression="Appointment.status")
    id = appointment_id or new_id()
    with _as_conflict(f"Appointment/{id} already exists"):
        return await apply_change(ctx, dict(appointment), id=id, current=None, now=now,
                                  options=options, method="POST")


async def hold(ctx: FhirContext, appointment: dict[str, Any] | None = None, *,
               appointment_id: str | None = None, now: datetime,
               hold_for: timedelta = DEFAULT_HOLD,
               options: BookingOptions = BookingOptions()) -> StoredResource:
    """IHE ITI-116 hold: the Appointment becomes pending, its slots held until now + hold_for."""
    if appointment is None and appointment_id is None:
        raise BusinessRuleViolation("A hold needs an Appointment or the id of one")
    id = appointment_id or (appointment or {}).get("id") or new_id()
    current = await ctx.store.read("Appointment", id)
    live = current if current is not None and not current.deleted else None
    if appointment is None and live is None:
        await resources.read(ctx, "Appointment", id)  # raises 404 / 410
    body = dict(appointment) if appointment is not None else body_of(live)  # type: ignore[arg-type]
    body["status"] = PENDING
    with _as_conflict(f"Appointment/{id} changed concurrently; try again"):
        return await _take_time(ctx, body, id=id, current=current, now=now, options=options,
                                method="POST" if live is None else "PUT",
                                hold_until=now + hold_for)


async def confirm(ctx: FhirContext, appointment_id: str, *, now: datetime,
                  comment: str | None = None) -> StoredResource:
    """A pending (held) Appointment becomes booked and its slots busy; 409 if a lapsed hold
    was taken by someone else meanwhile."""
    current = await resources.read(ctx, "Appointment", appointment_id)
    body = body_of(current)
    if body.get("status") == BOOKED and comment is None:
        return current
    body["status"] = BOOKED
    if comment is not None:
        body["comment"] = comment
    with _as_conflict(f"Appointment/{appointment_id} changed concurrently; try again"):
        return await apply_change(ctx, body, id=appointment_id, current=current, now=now,
                                  options=BookingOptions(), method="PUT")


async def change_status(ctx: FhirContext, appointment_id: str, new_status: str, *,
                        now: datetime, reason: dict[str, Any] | None = None,
                        expected_version: int | None = None) -> StoredResource:
    """Move an Appointment through the state machine (422 if not allowed); releasing moves
    such as cancel free its slots at once and keep the `cancelationReason`."""
    current = await resources.read(ctx, "Appointment", appointment_id)
    if expected_version is not None and current.version_id != expected_version:
        raise VersionConflict(f"Appointment/{appointment_id} is at version "
                              f"{current.version_id}, not {expected_version}")
    body = body_of(current)
    body["status"] = new_status
    if reason is not None:
        body["cancelationReason"] = reason
    with _as_conflict(f"Appointment/{appointment_id} changed concurrently; try again",
                      precondition=expected_version is not None):
        return await apply_change(ctx, body, id=appointment_id, current=current, now=now,
                                  options=BookingOptions(), method="PUT")


async def reschedule(ctx: FhirContext, appointment_id: str, new_appointment: dict[str, Any],
                     *, now: datetime,
                     options: BookingOptions = BookingOptions()) -> StoredResource:
    """Move an active Appointment to new slots/times in one step; on failure the old booking
    stays exactly as it was."""
    current = await resources.read(ctx, "Appointment", appointment_id)
    old_status = body_of(current).get("status")
    if not holds_time(old_status):
        raise BusinessRuleViolation(f"A {old_status} Appointment cannot be rescheduled",
                                    expression="Appointment.status")
    body = dict(new_appointment)
    body.setdefault("status", old_status)
    if not holds_time(body["status"]):
        raise BusinessRuleViolation("A rescheduled Appointment must still hold its time",
                                    expression="Appointment.status")
    with _as_conflict(f"Appointment/{appointment_id} changed concurrently; try again"):
        return await _take_time(ctx, body, id=appointment_id, current=current, now=now,
                                options=options, method="PUT",
                                hold_until=_pending_hold_until(body, now))


async def replace(ctx: FhirContext, old_id: str, new_appointment: dict[str, Any], *,
                  now: datetime, options: BookingOptions = BookingOptions(),
                  appointment_id: str | None = None) -> tuple[StoredResource, StoredResource]:
    """Book `new_appointment` as a new Appointment replacing `old_id`, then cancel the old one:
    (new, cancelled old). Any failure before the old one is cancelled (409 for a taken slot or
    an old appointment changed meanwhile) leaves the old booking as it was."""
    old = await resources.read(ctx, "Appointment", old_id)
    check_transition(body_of(old).get("status"), CANCELLED)
    if not holds_time(new_appointment.get("status")):
        raise BusinessRuleViolation("A replacement Appointment must be pending or booked",
                                    expression="Appointment.status")
    id = appointment_id or new_id()
    body = with_replaces(new_appointment, old_id)
    with _as_conflict(f"Appointment/{id} already exists"):
        stored, claims = await _claim_and_write(ctx, body, id=id, current=None, now=now,
                                                options=options, method="POST",
                                                overlap_ignores=old_id)
    try:
        cancelled = await cancel_replaced(ctx, old, replacement_id=id, now=now)
    except BaseException:
        await _abandon(ctx, stored, None, claims, now=now)
        raise
    await _finalize(ctx, stored, None, claims, status=body["status"],
                    hold_until=_pending_hold_until(body, now), now=now)
    return stored, cancelled


async def cancel_replaced(ctx: FhirContext, old: StoredResource, *, replacement_id: str,
                           now: datetime) -> StoredResource:
    """Cancel the replaced appointment at the version read; 409 if it changed meanwhile,
    unless recovery already cancelled it for this very replacement."""
    reason = {"text": f"Rescheduled to Appointment/{replacement_id}"}
    try:
        return await change_status(ctx, old.id, CANCELLED, now=now, reason=reason,
                                   expected_version=old.version_id)
    except FhirError as error:
        latest = await ctx.store.read("Appointment", old.id)
        if latest is not None and not latest.deleted and body_of(latest).get(
                "cancelationReason") == reason and body_of(latest).get("status") == CANCELLED:
            return latest  # a concurrent replacement or cancel by others is a conflict
        raise Conflict(f"Appointment/{old.id} changed while it was being replaced; try again",
                       expression="Appointment") from error


async def apply_change(ctx: FhirContext, new: dict[str, Any], *, id: str,
                       current: StoredResource | None, now: datetime, options: BookingOptions,
                       method: HistoryMethod) -> StoredResource:
    """Write `new` over `current` with the booking rules its status change calls for.

    Raises `WriteConflict` if `current` is no longer current (nothing is left claimed).
    """
    old = body_of(current) if current is not None and not current.deleted else None
    old_status = old.get("status") if old is not None else None
    status = new.get("status")
    check_transition(old_status, status or "")
    _require_same_replaces(new, old)
    if holds_time(status) and (old is None or _occupancy_changed(old, new)):
        return await _take_time(ctx, new, id=id, current=current, now=now, options=options,
                                method=method, hold_until=_pending_hold_until(new, now))
    write = next_version(ctx, new, resource_type="Appointment", id=id, current=current,
                         now=now, method=method)
    [stored] = await ctx.store.commit([write])
    if old is not None and releases_slots(old_status, status or ""):
        await free_slots(ctx, slot_ids(old), appointment_id=id, old_status=old_status, now=now)
    return stored


def _occupancy_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether the new version takes time differently: status into or within holding, slots,
    times or participants."""
    if not holds_time(old.get("status")) or (old.get("status") == PENDING
                                              and new.get("status") != PENDING):
        return True
    return (slot_ids(old) != slot_ids(new) or old.get("start") != new.get("start")
            or old.get("end") != new.get("end")
            or _actors(old) != _actors(new))


def _actors(appointment: Mapping[str, Any]) -> set[str]:
    return {(p.get("actor") or {}).get("reference", "") for p in appointment.get("participant", ())}


def _require_same_replaces(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    """Only `replace` links a replacement to the appointment it cancels: recovery acts on it."""
    if replaced_id(new) != (replaced_id(old) if old is not None else None):
        raise BusinessRuleViolation("The replaces extension is set only by $book with "
                                    "cancelled-appt-id", expression="Appointment.extension")


async def _take_time(ctx: FhirContext, new: dict[str, Any], *, id: str,
                     current: StoredResource | None, now: datetime, options: BookingOptions,
                     method: HistoryMethod, hold_until: datetime) -> StoredResource:
    """Claim, check overlaps, write the Appointment, finalize, free what it left (see module)."""
    old = body_of(current) if current is not None and not current.deleted else None
    _require_same_replaces(new, old)
    stored, claims = await _claim_and_write(ctx, new, id=id, current=current, now=now,
                                            options=options, method=method, overlap_ignores=id)
    await _finalize(ctx, stored, current, claims, status=new["status"],
                    hold_until=hold_until, now=now)
    if old is not None:
        dropped = set(slot_ids(old)) - set(slot_ids(new))
        await free_slots(ctx, dropped, appointment_id=id, old_status=old.get("status"), now=now)
    return stored


async def _claim_and_write(ctx: FhirContext, new: dict[str, Any], *, id: str,
                           current: StoredResource | None, now: datetime,
                           options: BookingOptions, method: HistoryMethod,
                           overlap_ignores: str) -> tuple[StoredResource, list[ClaimedSlot]]:
    """Claim the slots, check actor overlaps, write the Appointment; on failure release every
    claim. The overlap check ignores `overlap_ignores`: the appointment itself, or for a
    replacement (not stored yet) the appointment it replaces."""
    old = body_of(current) if current is not None and not current.deleted else None
    old_status = old.get("status") if old is not None else None
    check_transition(old_status, new["status"])
    window = _window(new)
    firmly_ours = set(slot_ids(old)) if old is not None and holds_time(old_status) \
        and old_status != PENDING else set()
    wanted = slot_ids(new)
    claims = await claim_slots(ctx, [s for s in wanted if s not in firmly_ours],
                               appointment_id=id, window=window, now=now,
                               expires=now + CLAIM_TTL,
                               may_use_emergency=options.may_use_emergency,
                               overbook_reason=options.overbook_reason)
    try:
        await check_actor_overlaps(ctx, new, id=overlap_ignores, window=window,
                                   slot_ids=wanted, now=now)
        if options.overbook_reason and any(c.kind is Claim.OVERBOOK for c in claims):
            new = with_overbooking_reason(new, options.overbook_reason)
        write = next_version(ctx, new, resource_type="Appointment", id=id, current=current,
                             now=now, method=method)
        [stored] = await ctx.store.commit([write])
    except BaseException:
        await release_claims(ctx, claims, now=now)
        raise
    return stored, claims


async def _finalize(ctx: FhirContext, stored: StoredResource, previous: StoredResource | None,
                    claims: list[ClaimedSlot], *, status: str, hold_until: datetime,
                    now: datetime) -> None:
    """Finalize the claims for the written appointment, or undo it and release them."""
    try:
        await finalize_claims(ctx, claims, status=status,
                              appointment_id=stored.id, hold_until=hold_until, now=now)
    except BaseException:
        await _abandon(ctx, stored, previous, claims, now=now)
        raise


async def _abandon(ctx: FhirContext, stored: StoredResource, previous: StoredResource | None,
                   claims: list[ClaimedSlot], *, now: datetime) -> None:
    """Undo a written appointment and release its claims, never masking the original error."""
    try:
        await _undo_appointment(ctx, stored, previous, now=now)
    except Exception:  # its claims lapse and recovery judges the slots
        log.exception("could not undo Appointment/%s", stored.id)
    await release_claims(ctx, claims, now=now)


async def _undo_appointment(ctx: FhirContext, stored: StoredResource,
                            previous: StoredResource | None, *, now: datetime) -> None:
    """Write the previous version back (or a deletion) after a failed finalize."""
    if previous is None or previous.deleted:
        write = tombstone(stored, now=now)
    else:
        write = next_version(ctx, body_of(previous), resource_type="Appointment", id=stored.id,
                             current=stored, now=now, method="PUT")
    try:
        await ctx.store.commit([write])
    except WriteConflict:
        pass  # someone changed it after us; their version stands


def _window(appointment: Mapping[str, Any]) -> Window | None:
    """The appointment's [start, end), when it has both."""
    start, end = appointment.get("start"), appointment.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    return parse_instant(start), parse_instant(end)


def _pending_hold_until(appointment: Mapping[str, Any], now: datetime) -> datetime:
    """How long a pending appointment holds its slots outside `$hold`: until it ends."""
    window = _window(appointment)
    return max(window[1], now + DEFAULT_HOLD) if window else now + DEFAULT_HOLD


class _as_conflict:
    """Report a stale appointment version from a service call as 409 (or 412 with If-Match)."""

    def __init__(self, message: str, *, precondition: bool = False) -> None:
        self.message, self.precondition = message, precondition

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 _tb: object) -> None:
        if isinstance(error, WriteConflict):
            raise (VersionConflict if self.precondition else Conflict)(self.message) from error
