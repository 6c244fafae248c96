"""Liveness and readiness probes, outside `/fhir`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fhir_server.fhir.errors import StoreUnavailable
from fhir_server.services.readiness import check_ready

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """The store answers; 503 otherwise, so a load balancer stops routing here."""
    try:
        await check_ready(request.app.state.fhir)
    except StoreUnavailable as error:
        return JSONResponse({"status": "unavailable", "reason": str(error)}, status_code=503)
    return JSONResponse({"status": "ready"})
