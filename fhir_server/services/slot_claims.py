"""Claim, finalize and release Slots: each step one conditional single-document write.

A claim reads the slot, decides with `claim_decision` and writes the next version expecting
exactly the version and status it read, so of any number of concurrent claimants one wins and
the rest get `WriteConflict` (reported as 409). Claims go in sorted id order; whoever fails
releases what it already holds, by writing the slot back over its own claim version, so a lost
race leaves the slots as they were. Correctness never needs a multi-document transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from fhir_server.fhir.errors import BusinessRuleViolation, Conflict
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.search.model import Clause, ReferenceMatch, StoreQuery, TokenMatch
from fhir_server.scheduling.slot_hold import (
    Claim,
    SlotUnavailable,
    claim_decision,
    held,
    overbooked,
    parse_hold,
    with_status,
)
from fhir_server.scheduling.state_machine import (
    PENDING,
    SLOT_BUSY,
    SLOT_FREE,
    SLOT_TENTATIVE,
    TIME_HOLDING_STATES,
    slot_status_for,
)
from fhir_server.services.context import FhirContext
from fhir_server.services.versions import next_version
from fhir_server.store.protocol import StoredResource, WriteConflict

log = logging.getLogger("fhir_server.booking")

SLOT_TAKEN = "Requested time slot is no longer available"
FREE_RETRIES = 3

Window = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class ClaimedSlot:
    """A slot this booking holds: the version it wrote last and the body to restore on release."""

    id: str
    stored: StoredResource
    restore: dict[str, Any]
    kind: Claim

    @property
    def body(self) -> dict[str, Any]:
        return body_of(self.stored)


def body_of(stored: StoredResource) -> dict[str, Any]:
    """The resource JSON of a stored version."""
    return orjson.loads(stored.body or b"{}")


def slot_taken(slot_id: str, why: str) -> Conflict:
    """The 409 a lost claim reports."""
    return Conflict(f"{SLOT_TAKEN}: Slot/{slot_id} {why}", expression="Appointment.slot")


async def claim_slots(ctx: FhirContext, ids: Iterable[str], *, appointment_id: str,
                      window: Window | None, now: datetime, expires: datetime,
                      may_use_emergency: bool = False,
                      overbook_reason: str | None = None) -> list[ClaimedSlot]:
    """Claim every slot in sorted id order, or release those claimed and raise (409/422)."""
    claimed: list[ClaimedSlot] = []
    try:
        for slot_id in sorted(set(ids)):
            claimed.append(await _claim_one(
                ctx, slot_id, appointment_id=appointment_id, window=window, now=now,
                expires=expires, may_use_emergency=may_use_emergency,
                overbook_reason=overbook_reason))
    except BaseException:
        await release_claims(ctx, claimed, now=now)
        raise
    return claimed


async def _claim_one(ctx: FhirContext, slot_id: str, *, appointment_id: str,
                     window: Window | None, now: datetime, expires: datetime,
                     may_use_emergency: bool, overbook_reason: str | None) -> ClaimedSlot:
    current = await ctx.store.read("Slot", slot_id)
    if current is None or current.deleted:
        raise BusinessRuleViolation(f"Slot/{slot_id} does not exist",
                                    expression="Appointment.slot")
    slot = body_of(current)
    _require_inside(slot, window, slot_id)
    try:
        kind = claim_decision(slot, appointment_id=appointment_id, now=now,
                              may_use_emergency=may_use_emergency,
                              overbook=overbook_reason is not None)
    except SlotUnavailable as why:
        raise slot_taken(slot_id, str(why)) from None
    if kind is Claim.OVERBOOK:
        assert overbook_reason is not None
        wanted, restore = overbooked(slot, overbook_reason), slot
    else:
        wanted = held(slot, appointment_id, expires)
        restore = slot if kind is Claim.REFRESH else with_status(slot, SLOT_FREE)
    write = next_version(ctx, wanted, resource_type="Slot", id=slot_id, current=current,
                         now=now, method="PUT", match={"status": slot.get("status")})
    try:
        [stored] = await ctx.store.commit([write])
    except WriteConflict:
        raise slot_taken(slot_id, "was claimed by another booking first") from None
    return ClaimedSlot(slot_id, stored, restore, kind)


def _require_inside(slot: Mapping[str, Any], window: Window | None, slot_id: str) -> None:
    """A slot must lie within the appointment's [start, end)."""
    if window is None or not slot.get("start") or not slot.get("end"):
        return
    start, end = parse_instant(slot["start"]), parse_instant(slot["end"])
    if start < window[0] or end > window[1]:
        raise BusinessRuleViolation(
            f"Slot/{slot_id} ({slot['start']} to {slot['end']}) lies outside the appointment's "
            "start and end", expression="Appointment.slot")


async def release_claims(ctx: FhirContext, claimed: Sequence[ClaimedSlot], *,
                         now: datetime) -> None:
    """Put every claimed slot back as it was, unless someone else has moved it on since."""
    for claim in reversed(claimed):
        write = next_version(ctx, dict(claim.restore), resource_type="Slot", id=claim.id,
                             current=claim.stored, now=now, method="PUT",
                             match={"status": claim.body.get("status")})
        try:
            await ctx.store.commit([write])
        except WriteConflict:
            log.info("Slot/%s moved on after our claim; not released", claim.id)
        except Exception:  # the original failure matters more; recovery frees lapsed holds
            log.exception("could not release Slot/%s; its hold lapses on its own", claim.id)


async def finalize_claims(ctx: FhirContext, claimed: list[ClaimedSlot], *, status: str,
                          appointment_id: str, hold_until: datetime, now: datetime) -> None:
    """Move claimed slots to what `status` needs: busy, or held until `hold_until` (pending).

    Updates `claimed` in place, so a caller that must undo releases the latest versions.
    """
    target = slot_status_for(status)
    for position, claim in enumerate(claimed):
        if claim.kind is Claim.OVERBOOK:
            continue  # an overbooked slot was busy before and stays busy
        if target == SLOT_TENTATIVE:
            wanted = held(claim.body, appointment_id, hold_until)
        else:
            wanted = with_status(claim.body, target)
        write = next_version(ctx, wanted, resource_type="Slot", id=claim.id,
                             current=claim.stored, now=now, method="PUT",
                             match={"status": SLOT_TENTATIVE})
        try:
            [stored] = await ctx.store.commit([write])
        except WriteConflict:
            if await _already_final(ctx, claim.id, target):
                continue
            raise slot_taken(claim.id, "was taken over after our hold lapsed") from None
        claimed[position] = replace(claim, stored=stored)


async def _already_final(ctx: FhirContext, slot_id: str, target: str) -> bool:
    """Whether recovery finalized our slot to busy while we were about to."""
    current = await ctx.store.read("Slot", slot_id)
    return (target == SLOT_BUSY and current is not None and not current.deleted
            and body_of(current).get("status") == SLOT_BUSY)


async def free_slots(ctx: FhirContext, ids: Iterable[str], *, appointment_id: str,
                     old_status: str | None, now: datetime) -> list[str]:
    """Free the slots the appointment held; slots now held by others are left alone."""
    freed: list[str] = []
    for slot_id in sorted(set(ids)):
        for _ in range(FREE_RETRIES):
            try:
                if await _free_one(ctx, slot_id, appointment_id=appointment_id,
                                   old_status=old_status, now=now):
                    freed.append(slot_id)
                break
            except WriteConflict:
                continue  # it moved between our read and write: judge it again
    return freed


async def _free_one(ctx: FhirContext, slot_id: str, *, appointment_id: str,
                    old_status: str | None, now: datetime) -> bool:
    current = await ctx.store.read("Slot", slot_id)
    if current is None or current.deleted:
        return False
    slot = body_of(current)
    if not _held_by(slot, appointment_id, old_status):
        return False
    if slot.get("overbooked") and await _others_on(ctx, slot_id, appointment_id):
        return False  # another appointment still occupies this overbooked slot
    write = next_version(ctx, with_status(slot, SLOT_FREE), resource_type="Slot", id=slot_id,
                         current=current, now=now, method="PUT",
                         match={"status": slot.get("status")})
    await ctx.store.commit([write])
    return True


def _held_by(slot: Mapping[str, Any], appointment_id: str, old_status: str | None) -> bool:
    """Whether the slot is this appointment's: its hold names it, or it is busy for it.

    A busy slot carries no hold, so it counts as ours only if the appointment was firmly
    booked; a pending appointment's lapsed hold may have been taken and booked by another.
    """
    status = slot.get("status")
    if status == SLOT_TENTATIVE:
        hold = parse_hold(slot)
        return hold is not None and hold.appointment_id == appointment_id
    return status == SLOT_BUSY and old_status != PENDING


async def _others_on(ctx: FhirContext, slot_id: str, appointment_id: str) -> bool:
    """Whether another active appointment references the slot."""
    query = StoreQuery("Appointment", (
        Clause((ReferenceMatch("slot", "Slot", slot_id),)),
        Clause(tuple(TokenMatch("status", None, s) for s in sorted(TIME_HOLDING_STATES))),
    ), limit=2, with_total=False)
    page = await ctx.store.search(query)
    return any(r.id != appointment_id for r in page.resources)
