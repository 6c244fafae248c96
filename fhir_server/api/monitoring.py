"""`GET /metrics`: the security and audit counters in the Prometheus text format.

Public on the root like `/healthz`: the counters hold no patient data, only counts of
refusals by reason, resource type and interaction. Put it behind the reverse proxy's
access rules when the network is not trusted.
"""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import Response

import fhir_server.audit.metrics  # noqa: F401  (registers the counters this page shows)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Every registered counter (auth failures, authorization denials, dropped AuditEvents)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
