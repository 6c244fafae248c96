"""Load the demo clinic into an empty store, idempotently (existing resources are kept)."""

from __future__ import annotations

from datetime import date, datetime

from fhir_server.fhir.search.model import StoreQuery
from fhir_server.seed.demo import demo_resources
from fhir_server.services import resources
from fhir_server.services.context import FhirContext


async def store_is_empty(ctx: FhirContext) -> bool:
    """True when no Organization exists yet, i.e. nothing was ever loaded."""
    page = await ctx.store.search(StoreQuery("Organization", limit=1, with_total=False))
    return not page.resources


async def seed_demo(ctx: FhirContext, *, today: date, now: datetime) -> int:
    """Create each demo resource that does not exist yet; return how many were created."""
    created = 0
    for resource in demo_resources(today):
        kind, id = resource["resourceType"], resource["id"]
        if await ctx.store.read(kind, id) is not None:
            continue
        await resources.update(ctx, kind, id, resource, now=now)
        created += 1
    return created
