"""Readiness: can this process serve requests, i.e. does its store answer?"""

from __future__ import annotations

from fhir_server.services.context import FhirContext


async def check_ready(ctx: FhirContext) -> None:
    """Raise `StoreUnavailable` unless the store answers."""
    await ctx.store.ping()
