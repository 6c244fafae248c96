"""Typed access to what the app built at start-up."""

from __future__ import annotations

from starlette.requests import Request

from fhir_server.services.context import FhirContext


def fhir_context(request: Request) -> FhirContext:
    """The request's FhirContext: the app's, with the caller's rights once authenticated."""
    ctx: FhirContext | None = getattr(request.state, "fhir", None)
    if ctx is None:
        ctx = request.app.state.fhir
    assert ctx is not None
    return ctx
