"""REST writes of Appointment go through booking: POST/PUT/PATCH/DELETE claim and free slots.

- create with a time-holding status (pending, booked, arrived, checked-in) books its slots;
  other statuses (proposed, waitlist) are plain versions after the creation check;
- update/patch: a status change follows the state machine (cancel frees slots at once), a
  change of slots, times or participants of an active appointment reschedules it, anything
  else is a plain version (still checked as a self-move);
- delete of an appointment holding slots writes the deletion, then frees them.
The incoming `overbooking` extension is the REST way to ask for an overbooking override; a
`replaces` extension other than the stored one is refused (422): only `$book` with
`cancelled-appt-id` links a replacement, because recovery cancels what it names.
Every appointment write expects `change.current`, so a stale one raises `WriteConflict`.
Each stored version then plans its messages (`outbox.appointment_changed`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_server.scheduling.slot_hold import slot_ids
from fhir_server.scheduling.state_machine import holds_time
from fhir_server.services import outbox
from fhir_server.services.booking import apply_change
from fhir_server.services.booking_rights import booking_options
from fhir_server.services.context import FhirContext, ResourceChange
from fhir_server.services.resources import commit_plain
from fhir_server.services.slot_claims import body_of, free_slots
from fhir_server.store.protocol import StoredResource


class AppointmentRules:
    """TypeRules for Appointment; refused inside transaction Bundles (slots change stepwise)."""

    transactional = False

    async def write(self, ctx: FhirContext, change: ResourceChange) -> StoredResource:
        stored = await _delete(ctx, change) if change.resource is None else await _change(
            ctx, change, dict(change.resource))
        await outbox.appointment_changed(ctx, stored, now=change.now)
        return stored

    async def after_commit(self, ctx: FhirContext, stored: StoredResource, *,
                           now: datetime) -> None:
        return None  # never committed as a plain version: `transactional` is False


async def _change(ctx: FhirContext, change: ResourceChange,
                  resource: dict[str, Any]) -> StoredResource:
    return await apply_change(ctx, resource, id=change.id, current=change.current,
                              now=change.now, options=booking_options(ctx, resource),
                              method=change.method)


async def _delete(ctx: FhirContext, change: ResourceChange) -> StoredResource:
    """Record the deletion first, then free the slots it held (a crash wastes, never doubles)."""
    assert change.current is not None
    old = body_of(change.current)
    stored = await commit_plain(ctx, change)
    if holds_time(old.get("status")):
        await free_slots(ctx, slot_ids(old), appointment_id=change.id,
                         old_status=old.get("status"), now=change.now)
    return stored
