"""Crash repair for bookings: lapsed slot holds and half-finished replacements.

Booking never depends on a transaction, so a process that dies between claiming a slot and
finalizing it leaves a `busy-tentative` slot with a hold. This pass, run at start-up and
periodically, settles each lapsed hold by what its appointment says.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.search.model import Clause, StoreQuery, TokenMatch
from fhir_server.scheduling.slot_hold import parse_hold, replaced_id, slot_ids, with_status
from fhir_server.scheduling.state_machine import (
    FINAL_STATES,
    PENDING,
    SLOT_BUSY,
    SLOT_FREE,
    SLOT_TENTATIVE,
    holds_time,
)
from fhir_server.services.booking import cancel_replaced
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_claims import body_of
from fhir_server.services.versions import next_version
from fhir_server.store.protocol import StoredResource, WriteConflict

log = logging.getLogger("fhir_server.booking")

RECOVERY_BATCH = 1000


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What one recovery pass did with lapsed holds (and which replaced appointments it
    cancelled)."""

    freed: tuple[str, ...] = ()
    finalized: tuple[str, ...] = ()
    kept: int = 0
    replaced: tuple[str, ...] = ()


async def recover(ctx: FhirContext, *, now: datetime) -> RecoveryReport:
    """Repair lapsed holds: free a slot whose appointment is gone or no longer takes it, make it
    busy if its appointment was booked; a lapsed hold of a pending appointment is kept. An
    appointment holding time that replaces another still active one (a `replace` that crashed
    before cancelling it) gets the old one cancelled first."""
    page = await ctx.store.search(StoreQuery(
        "Slot", (Clause((TokenMatch("status", None, SLOT_TENTATIVE),)),),
        limit=RECOVERY_BATCH, with_total=False))
    freed: list[str] = []
    finalized: list[str] = []
    replaced: list[str] = []
    kept = 0
    for slot_version in page.resources:
        outcome = await _recover_slot(ctx, slot_version, now=now, replaced=replaced)
        if outcome == SLOT_FREE:
            freed.append(slot_version.id)
        elif outcome == SLOT_BUSY:
            finalized.append(slot_version.id)
        else:
            kept += 1
    return RecoveryReport(tuple(freed), tuple(finalized), kept, tuple(replaced))


async def _recover_slot(ctx: FhirContext, current: StoredResource, *, now: datetime,
                        replaced: list[str]) -> str | None:
    """The status the slot was repaired to, or None if left as it is; adds the id of an old
    appointment it cancelled to `replaced`."""
    slot = body_of(current)
    hold_ = parse_hold(slot)
    if hold_ is None or not hold_.expired(now):
        return None
    status = None
    if hold_.appointment_id:
        appointment = await ctx.store.read("Appointment", hold_.appointment_id)
        if appointment is not None and not appointment.deleted:
            body = body_of(appointment)
            if current.id in slot_ids(body):
                status = body.get("status")
                if holds_time(status) and await _finish_replacement(ctx, body, now=now):
                    replaced.append(replaced_id(body) or "")
    if status == PENDING:
        return None
    target = SLOT_BUSY if holds_time(status) else SLOT_FREE
    write = next_version(ctx, with_status(slot, target), resource_type="Slot", id=current.id,
                         current=current, now=now, method="PUT",
                         match={"status": SLOT_TENTATIVE})
    try:
        await ctx.store.commit([write])
    except WriteConflict:
        return None  # a booking or another recovery acted first
    return target


async def _finish_replacement(ctx: FhirContext, replacement: Mapping[str, Any], *,
                              now: datetime) -> bool:
    """Cancel the still active appointment `replacement` replaces; whether it did."""
    old_id = replaced_id(replacement)
    if old_id is None:
        return False
    old = await ctx.store.read("Appointment", old_id)
    if old is None or old.deleted or body_of(old).get("status") in FINAL_STATES:
        return False
    try:
        await cancel_replaced(ctx, old, replacement_id=str(replacement.get("id")), now=now)
    except FhirError:
        log.exception("could not cancel Appointment/%s, replaced by Appointment/%s",
                      old_id, replacement.get("id"))
        return False
    return True
