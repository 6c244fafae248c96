"""Persistence: the `Store` port and its SQLite and MongoDB adapters."""

from fhir_server.store.protocol import (
    HistoryPage,
    SearchPage,
    Store,
    StoredResource,
    VersionWrite,
    WriteConflict,
)

__all__ = ["HistoryPage", "SearchPage", "Store", "StoredResource", "VersionWrite", "WriteConflict"]
