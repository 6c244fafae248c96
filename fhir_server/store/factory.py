"""Choose the store adapter from the store URL."""

from __future__ import annotations

from fhir_server.store.protocol import Store


def open_store_for_url(url: str, *, timeout_ms: int = 5000) -> Store:
    """An unopened adapter for `sqlite:///path` or `mongodb://...` (call `await store.open()`)."""
    if url.startswith("sqlite://"):
        from fhir_server.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///") or ":memory:")
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from fhir_server.store.mongo import MongoStore

        return MongoStore(url, timeout_ms=timeout_ms)
    raise ValueError(f"unsupported store URL: {url}")
