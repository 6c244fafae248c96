"""The benchmark's security-off server: the real app with neither guard nor audit on its routes.

Only the benchmarks build it (never `serve`), to measure what token validation,
authorization and audit cost a request against the very same FHIR layer. Endpoints that
read the caller (search narrowing, includes) see a fixed administrator, as the guard would
leave it, without any token being validated.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.app import create_app, fhir_router
from fhir_server.auth.policy import Access
from fhir_server.auth.roles import ROLE_CLAIM

ADMINISTRATOR = Access.from_claims({"scope": "user/*.cruds", ROLE_CLAIM: "administrator",
                                    "client_id": "bench"})


def as_administrator(app: ASGIApp) -> ASGIApp:
    """`app` with the administrator's `Access` on every request's state."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["access"] = ADMINISTRATOR
        await app(scope, receive, send)

    return serve


def create_unsecured_app() -> FastAPI:
    """`create_app()` with its FHIR mount serving `fhir_router(secured=False)`."""
    app = create_app()
    unsecured = fhir_router(secured=False)
    for route in app.router.routes:
        if isinstance(route, Mount) and route.app is app.state.fhir_router:
            route.app = as_administrator(unsecured)
    app.state.fhir_router = unsecured
    return app
