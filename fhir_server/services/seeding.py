"""Load the demo clinic into an empty store, idempotently (existing resources are kept).

Slots are not loaded from the demo set: the slot generator writes them from each Schedule's
rules, from now on over its horizon, exactly as it does for a clinic's own Schedules. The demo
Appointments then book two of those slots.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import orjson

from fhir_server.fhir.search.model import StoreQuery
from fhir_server.seed.demo import demo_resources
from fhir_server.services import resources
from fhir_server.services.context import FhirContext
from fhir_server.services.slot_generation import generate_over_horizon


async def store_is_empty(ctx: FhirContext) -> bool:
    """True when no Organization exists yet, i.e. nothing was ever loaded."""
    page = await ctx.store.search(StoreQuery("Organization", limit=1, with_total=False))
    return not page.resources


async def seed_demo(ctx: FhirContext, *, today: date, now: datetime) -> int:
    """Create each demo resource and slot that does not exist yet; return how many were."""
    demo = demo_resources(today)
    # Schedules are written plainly and generated below, so the new slots can be counted.
    plain = dataclasses.replace(ctx, rules={k: v for k, v in ctx.rules.items()
                                            if k != "Schedule"})
    created = 0
    for resource in demo:
        if resource["resourceType"] not in ("Slot", "Appointment"):
            created += await _create_missing(plain, resource, now=now)
    for schedule in (r for r in demo if r["resourceType"] == "Schedule"):
        report = await generate_over_horizon(ctx, schedule["id"], now=now)
        created += len(report.created)
    for appointment in (r for r in demo if r["resourceType"] == "Appointment"):
        if await _create_missing(ctx, appointment, now=now):
            await _mark_busy(ctx, appointment, now=now)
            created += 1
    return created


async def _create_missing(ctx: FhirContext, resource: dict, *, now: datetime) -> int:
    kind, id = resource["resourceType"], resource["id"]
    if await ctx.store.read(kind, id) is not None:
        return 0
    await resources.update(ctx, kind, id, resource, now=now)
    return 1


async def _mark_busy(ctx: FhirContext, appointment: dict, *, now: datetime) -> None:
    """Booking rules claim an Appointment's slots; without them, mark the slots busy here."""
    for reference in appointment["slot"]:
        slot_id = reference["reference"].removeprefix("Slot/")
        slot = orjson.loads((await resources.read(ctx, "Slot", slot_id)).body or b"{}")
        if slot["status"] == "free":
            await resources.update(ctx, "Slot", slot_id, {**slot, "status": "busy"}, now=now)
