"""Whose schedule is this? A doctor may only change availability that is their own.

A Schedule belongs to a user when one of its actors is the user's `fhirUser` reference, or a
PractitionerRole whose `practitioner` is that user. A Slot belongs to whoever owns its
Schedule; a Slot whose Schedule cannot be found belongs to nobody (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fhir_server.services.context import FhirContext

Resource = Mapping[str, Any]


def local_reference(reference: str | None, base_url: str) -> str | None:
    """`Type/id` for a relative reference or an absolute one to this server, else as given."""
    if reference is None:
        return None
    return reference.removeprefix(base_url.rstrip("/") + "/")


def _references(resource: Resource, element: str) -> list[str]:
    found = resource.get(element) or []
    items = found if isinstance(found, list) else [found]
    return [item["reference"] for item in items
            if isinstance(item, Mapping) and isinstance(item.get("reference"), str)]


async def owns_schedule(ctx: FhirContext, user: str, schedule: Resource) -> bool:
    """True when `user` (a fhirUser reference) or a PractitionerRole of theirs is an actor."""
    me = local_reference(user, ctx.base_url)
    actors = [local_reference(ref, ctx.base_url) or "" for ref in _references(schedule, "actor")]
    if me in actors:
        return True
    role_ids = [ref.split("/", 1)[1] for ref in actors if ref.startswith("PractitionerRole/")]
    if not role_ids:
        return False
    for stored in await ctx.store.read_many("PractitionerRole", role_ids):
        if stored.deleted or stored.body is None:
            continue
        role = orjson.loads(stored.body)
        practitioner = (role.get("practitioner") or {}).get("reference")
        if local_reference(practitioner, ctx.base_url) == me:
            return True
    return False


async def owns_slot(ctx: FhirContext, user: str, slot: Resource) -> bool:
    """True when `user` owns the Schedule the Slot belongs to."""
    references = _references(slot, "schedule")
    schedule_ref = local_reference(references[0], ctx.base_url) if references else None
    if not schedule_ref or not schedule_ref.startswith("Schedule/"):
        return False
    stored = await ctx.store.read("Schedule", schedule_ref.split("/", 1)[1])
    if stored is None or stored.deleted or stored.body is None:
        return False
    return await owns_schedule(ctx, user, orjson.loads(stored.body))
