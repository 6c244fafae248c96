"""Small builders of versions and queries, so each contract test reads as a store behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fhir_server.fhir.search.model import Clause, IndexEntry, Predicate, StoreQuery
from fhir_server.store.protocol import (
    HistoryMethod,
    JsonScalar,
    SearchPage,
    Store,
    StoredResource,
    VersionWrite,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    """An instant `minutes` after the suite's reference time."""
    return T0 + timedelta(minutes=minutes)


def body(resource_type: str, id: str, version: int, when: datetime, **fields: Any) -> bytes:
    """Resource JSON with `meta` as the FHIR layer would store it."""
    resource = {"resourceType": resource_type, "id": id,
                "meta": {"versionId": str(version), "lastUpdated": when.isoformat()}, **fields}
    return orjson.dumps(resource)


def version(resource_type: str, id: str, number: int, *, index: tuple[IndexEntry, ...] = (),
            when: datetime | None = None, match: Mapping[str, JsonScalar] | None = None,
            expected: int | None = None, method: HistoryMethod | None = None,
            patients: tuple[str, ...] | None = None, **fields: Any) -> VersionWrite:
    """Version `number` of a resource, expecting `number - 1` unless told otherwise."""
    when = when or at(number)
    return VersionWrite(
        resource_type=resource_type, id=id, version_id=number, last_updated=when,
        method=method or ("POST" if number == 1 else "PUT"),
        body=body(resource_type, id, number, when, **fields), index=index,
        expected_version=number - 1 if expected is None else expected, match=match or {},
        patients=patients)


def tombstone(resource_type: str, id: str, number: int, *,
              when: datetime | None = None) -> VersionWrite:
    """A deletion recorded as version `number`."""
    return VersionWrite(resource_type=resource_type, id=id, version_id=number,
                        last_updated=when or at(number), method="DELETE", body=None,
                        expected_version=number - 1)


async def put(store: Store, resource_type: str, id: str, number: int = 1,
              **kwargs: Any) -> StoredResource:
    """Commit one version and return what was stored."""
    [stored] = await store.commit([version(resource_type, id, number, **kwargs)])
    return stored


def fields_of(stored: StoredResource) -> dict[str, Any]:
    """The stored JSON body as a dict."""
    assert stored.body is not None
    return orjson.loads(stored.body)


def where(resource_type: str, *clauses: Clause | Predicate, **options: Any) -> StoreQuery:
    """A query whose bare predicates are single-predicate clauses."""
    wrapped = tuple(c if isinstance(c, Clause) else Clause((c,)) for c in clauses)
    return StoreQuery(resource_type=resource_type, where=wrapped, **options)


def ids(page: SearchPage) -> list[str]:
    """The ids on a page, in order."""
    return [r.id for r in page.resources]
