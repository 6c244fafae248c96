"""The benchmark's baseline: bare Starlette endpoints serving the same stored JSON.

Same store adapter and same typed query as the server, with no FHIR layer on top: no routing
by type, no parsing of search syntax, no Bundle model, no headers beyond the content type.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_server.fhir.search.dates import parse_date_range
from fhir_server.fhir.search.model import Clause, DateMatch, ReferenceMatch, StoreQuery
from fhir_server.store.factory import open_store_for_url

FHIR_JSON = "application/fhir+json"


def create_bare_app() -> Starlette:
    """A Starlette app over the store named by FHIR_SCHEDULER_STORE_URL."""
    store = open_store_for_url(os.environ["FHIR_SCHEDULER_STORE_URL"])
    low, _ = parse_date_range("2026-01-01")
    high, _ = parse_date_range("2026-05-01")

    async def healthz(request: Request) -> Response:
        return Response(b"ok")

    async def read(request: Request) -> Response:
        stored = await store.read("Appointment", request.path_params["id"])
        return Response(stored.body if stored else b"", media_type=FHIR_JSON)

    async def search(request: Request) -> Response:
        query = StoreQuery("Appointment", where=(
            Clause((ReferenceMatch("patient", "Patient", request.query_params["patient"]),)),
            Clause((DateMatch("date", high_gt=low),)),
            Clause((DateMatch("date", low_lt=high),)),
        ))
        page = await store.search(query)
        body = b'{"resourceType":"Bundle","type":"searchset","entry":[' + b",".join(
            b'{"resource":' + (r.body or b"{}") + b"}" for r in page.resources) + b"]}"
        return Response(body, media_type=FHIR_JSON)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    return Starlette(routes=[Route("/healthz", healthz), Route("/bare/Appointment/{id}", read),
                             Route("/bare/search", search)], lifespan=lifespan)
