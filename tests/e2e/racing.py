"""Concurrency tests' tools: a store that interleaves callers like a networked one does."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from fhir_server.app import create_app
from fhir_server.store.factory import open_store_for_url
from fhir_server.store.protocol import Store, VersionWrite
from tests.e2e.conftest import BASE, make_settings
from tests.e2e.tokens import admin_headers

WARM_CONNECTIONS = 64


class YieldingStore:
    """A store that lets other tasks run before each operation, after a random sub-millisecond
    latency like a networked one's, so requests interleave in varying orders."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.latency = random.Random(11)

    async def open(self) -> None:
        await self.inner.open()

    @property
    def audit_log(self) -> Any:
        return self.inner.audit_log

    async def close(self) -> None:
        await self.inner.close()

    async def _latency(self) -> None:
        await asyncio.sleep(self.latency.random() / 2000)

    async def ping(self) -> None:
        await self._latency()
        await self.inner.ping()

    async def read(self, resource_type: str, id: str) -> Any:
        await self._latency()
        return await self.inner.read(resource_type, id)

    async def read_version(self, resource_type: str, id: str, version_id: int) -> Any:
        await self._latency()
        return await self.inner.read_version(resource_type, id, version_id)

    async def commit(self, writes: Sequence[VersionWrite]) -> Any:
        await self._latency()
        return await self.inner.commit(writes)

    async def search(self, query: Any) -> Any:
        await self._latency()
        return await self.inner.search(query)

    async def history(self, *args: Any, **kwargs: Any) -> Any:
        await self._latency()
        return await self.inner.history(*args, **kwargs)

    async def read_many(self, resource_type: str, ids: Sequence[str]) -> Any:
        await self._latency()
        return await self.inner.read_many(resource_type, ids)


@asynccontextmanager
async def racing_client(tmp_path: Path, store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose store yields before every call; the pool is warmed up.

    The SQLite adapter runs each call synchronously, so without the yields concurrent requests
    would never interleave between a claim's read and its write, and a check-then-write bug
    would pass.
    """
    settings = make_settings(tmp_path, store_url=store_url)
    store = YieldingStore(open_store_for_url(store_url, timeout_ms=settings.mongo_timeout_ms))
    app = create_app(settings, store=store)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE + "/",
                                     headers=admin_headers()) as http:
            # Open every pooled connection first: a cold MongoDB pool opens two at a time and
            # would serialize the clients (see tests/integration/mongo/test_booking_race.py).
            await asyncio.gather(*(store.ping() for _ in range(WARM_CONNECTIONS)))
            yield http
