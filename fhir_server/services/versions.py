"""Turn a validated resource into the next stored version: id, meta, JSON bytes and index."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import uuid4

import orjson

from fhir_server.fhir.instants import format_instant, to_millisecond
from fhir_server.fhir.references import referenced_patients
from fhir_server.fhir.search.extract import extract_index
from fhir_server.services.context import FhirContext
from fhir_server.store.protocol import HistoryMethod, JsonScalar, StoredResource, VersionWrite


def new_id() -> str:
    """A server-assigned logical id."""
    return str(uuid4())


def next_version(ctx: FhirContext, resource: dict[str, Any], *, resource_type: str, id: str,
                 current: StoredResource | None, now: datetime, method: HistoryMethod,
                 match: Mapping[str, JsonScalar] | None = None) -> VersionWrite:
    """The write that appends `resource` after `current` (None: a new resource)."""
    version_id = (current.version_id if current else 0) + 1
    now = to_millisecond(now)
    resource["id"] = id
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = format_instant(now)
    resource["meta"] = meta
    return VersionWrite(
        resource_type=resource_type, id=id, version_id=version_id, last_updated=now,
        method=method, body=orjson.dumps(resource),
        index=extract_index(resource, ctx.registry, base_url=ctx.base_url),
        patients=referenced_patients(resource),
        expected_version=current.version_id if current else 0, match=dict(match or {}))


def tombstone(current: StoredResource, *, now: datetime) -> VersionWrite:
    """The write that records a deletion after `current`."""
    now = to_millisecond(now)
    return VersionWrite(
        resource_type=current.resource_type, id=current.id, version_id=current.version_id + 1,
        last_updated=now, method="DELETE", body=None, index=(), patients=(),
        expected_version=current.version_id)
