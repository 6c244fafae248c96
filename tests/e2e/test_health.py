"""Liveness and readiness probes, served outside the FHIR base."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.fhir.errors import StoreUnavailable
from tests.e2e.conftest import make_settings
from tests.e2e.tokens import admin_headers
from tests.support.mongo_server import mongo_database_url, start_test_mongodb


@pytest.fixture
async def app(tmp_path: Path, store_url: str) -> AsyncIterator[FastAPI]:
    """The app on a fresh store (SQLite, and MongoDB under the `mongo` mark), started."""
    app = create_app(make_settings(tmp_path, store_url=store_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def root(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client at the server root, not at the FHIR base."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_healthz_says_the_process_is_alive(root: httpx.AsyncClient) -> None:
    response = await root.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_says_ready_when_the_store_answers(root: httpx.AsyncClient) -> None:
    response = await root.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_is_503_when_the_store_does_not_answer(
        app: FastAPI, root: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unreachable() -> None:
        raise StoreUnavailable("database file is locked")

    monkeypatch.setattr(app.state.fhir.store, "ping", unreachable)

    response = await root.get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert (await root.get("/healthz")).status_code == 200


async def test_probes_are_not_under_the_fhir_base(root: httpx.AsyncClient) -> None:
    for path in ("/fhir/healthz", "/fhir/readyz"):
        response = await root.get(path, headers=admin_headers())
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.mongo
async def test_readyz_turns_503_when_mongodb_goes_away_and_healthz_stays_up(
        tmp_path: Path) -> None:
    with ExitStack() as server:
        server_uri = server.enter_context(start_test_mongodb())
        settings = make_settings(tmp_path, mongo_timeout_ms=300,
                                 store_url=mongo_database_url(server_uri, "readiness"))
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://testserver") as root:
                assert (await root.get("/readyz")).status_code == 200

                server.close()  # stops this MongoDB server process

                response = await root.get("/readyz")
                assert response.status_code == 503
                assert response.json()["status"] == "unavailable"
                assert (await root.get("/healthz")).status_code == 200
