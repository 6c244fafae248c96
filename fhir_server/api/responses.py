"""FHIR JSON responses: stored bytes go out untouched, built resources through orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json; charset=utf-8"


def fhir_bytes(body: bytes, *, status: int = 200,
               headers: Mapping[str, str] | None = None) -> Response:
    """Serve already-serialized FHIR JSON (a stored resource) without re-encoding it."""
    return Response(content=body, status_code=status, headers=headers, media_type=FHIR_JSON)


def fhir_json(resource: Any, *, status: int = 200,
              headers: Mapping[str, str] | None = None) -> Response:
    """Serialize a resource or Bundle (which may embed `orjson.Fragment`s) and serve it."""
    return fhir_bytes(orjson.dumps(resource), status=status, headers=headers)


def empty(status: int, headers: Mapping[str, str] | None = None) -> Response:
    """A response without a body (`Prefer: return=minimal`, deletes)."""
    return Response(status_code=status, headers=headers)
