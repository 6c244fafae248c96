"""Typed access to what the app built at start-up."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.services.context import FhirContext


def fhir_context(request: Request) -> FhirContext:
    """The FhirContext the lifespan stored on the app."""
    ctx: FhirContext = request.app.state.fhir
    return ctx
