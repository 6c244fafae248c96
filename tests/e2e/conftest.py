"""An app on a fresh SQLite file per test, driven over ASGI with httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fhir_server.app import create_app
from fhir_server.settings import Settings

BASE = "http://testserver/fhir"


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a throwaway server whose data lives under `tmp_path`."""
    values: dict[str, object] = {
        "store_url": f"sqlite:///{tmp_path / 'fhir.db'}",
        "data_dir": tmp_path,
        "base_url": BASE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a running app (lifespan entered) at BASE."""
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE + "/") as http:
            yield http
