"""Render searchset, history and batch/transaction-response Bundles.

Stored resource JSON is embedded as `orjson.Fragment`, so a Bundle of a hundred resources
is assembled without parsing any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import uuid4

import orjson

from fhir_server.fhir.instants import format_instant

SearchMode = Literal["match", "include", "outcome"]


@dataclass(frozen=True, slots=True)
class SearchEntry:
    """A resource in a searchset: its stored JSON and why it is there."""

    resource_type: str
    id: str
    body: bytes
    mode: SearchMode = "match"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One version in a history Bundle; `body` is None for a deletion."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    method: str
    body: bytes | None


def _full_url(base_url: str, resource_type: str, id: str) -> str:
    return f"{base_url}/{resource_type}/{id}"


def searchset(*, base_url: str, entries: Sequence[SearchEntry], total: int | None,
              links: Sequence[tuple[str, str]], now: datetime,
              outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    """A searchset Bundle; `links` are (relation, url) pairs such as self/next/previous."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "meta": {"lastUpdated": format_instant(now)},
        "type": "searchset",
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": relation, "url": url} for relation, url in links]
    rendered = [{"fullUrl": _full_url(base_url, e.resource_type, e.id),
                 "resource": orjson.Fragment(e.body),
                 "search": {"mode": e.mode}} for e in entries]
    if outcome is not None:
        rendered.append({"resource": outcome, "search": {"mode": "outcome"}})
    if rendered:
        bundle["entry"] = rendered
    return bundle


def history(*, base_url: str, entries: Sequence[HistoryEntry], total: int,
            links: Sequence[tuple[str, str]], now: datetime) -> dict[str, Any]:
    """A history Bundle, newest version first, with request and response per entry."""
    rendered = []
    for e in entries:
        url = f"{e.resource_type}/{e.id}" if e.method != "POST" else e.resource_type
        entry: dict[str, Any] = {
            "fullUrl": _full_url(base_url, e.resource_type, e.id),
            "request": {"method": e.method, "url": url},
            "response": {
                "status": "204 No Content" if e.body is None else
                ("201 Created" if e.method == "POST" else "200 OK"),
                "etag": f'W/"{e.version_id}"',
                "lastModified": format_instant(e.last_updated),
            },
        }
        if e.body is not None:
            entry["resource"] = orjson.Fragment(e.body)
        rendered.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "meta": {"lastUpdated": format_instant(now)},
        "type": "history",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links],
    }
    if rendered:
        bundle["entry"] = rendered
    return bundle
