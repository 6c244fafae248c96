"""The reads behind one message: what dispatch has just read is reused, directory resources
come from a per-process cache, everything else is read fresh.

Directory resources (Location, HealthcareService, Organization, Practitioner, Schedule) and
searches over them change rarely and every message of a clinic names the same few, so each is
read at most once per `DIRECTORY_TTL_S` per worker: a renamed location shows in messages
within a minute. The Appointment and the Patient are always current (dispatch checks the
appointment's status and the patient's preferences on the versions it passes on)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from fhir_server.fhir.errors import ResourceGone, ResourceNotFound
from fhir_server.services import resources
from fhir_server.services.context import FhirContext
from fhir_server.services.search import find_matches

DIRECTORY_TYPES = frozenset({"Location", "HealthcareService", "Organization", "Practitioner",
                             "Schedule"})
DIRECTORY_TTL_S = 60.0
DIRECTORY_ENTRIES = 5000

Resource = dict[str, Any]
T = TypeVar("T")


class DirectoryCache:
    """Values remembered for `ttl_s` (absent ones too), the oldest dropped beyond `limit`."""

    def __init__(self, ttl_s: float = DIRECTORY_TTL_S, limit: int = DIRECTORY_ENTRIES) -> None:
        self._ttl_s, self._limit = ttl_s, limit
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The remembered value for `key`, else `load()`'s (remembered from now on)."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl_s:
            value: T = entry[1]
            return value
        loaded = await load()
        self._entries.pop(key, None)
        self._entries[key] = (now, loaded)
        if len(self._entries) > self._limit:
            del self._entries[next(iter(self._entries))]
        return loaded


@dataclass(frozen=True, slots=True)
class Records:
    """Reads for one message: `known` maps `Type/id` to what the caller read (None: absent)."""

    ctx: FhirContext
    known: Mapping[str, Resource | None] = field(default_factory=dict)
    directory: DirectoryCache | None = None

    async def read(self, resource_type: str, id: str) -> Resource | None:
        """The current resource; None when it never existed or was deleted."""
        reference = f"{resource_type}/{id}"
        if reference in self.known:
            return self.known[reference]
        if self.directory is None or resource_type not in DIRECTORY_TYPES:
            return await self._read(resource_type, id)
        return await self.directory.get(reference, lambda: self._read(resource_type, id))

    async def search(self, resource_type: str, params: Sequence[tuple[str, str]], *,
                     limit: int) -> list[Resource]:
        """Up to `limit` current matches of a search."""
        if self.directory is None or resource_type not in DIRECTORY_TYPES:
            return await self._search(resource_type, params, limit)
        return await self.directory.get((resource_type, tuple(params), limit),
                                        lambda: self._search(resource_type, params, limit))

    async def _read(self, resource_type: str, id: str) -> Resource | None:
        try:
            return body(await resources.read(self.ctx, resource_type, id))
        except (ResourceNotFound, ResourceGone):
            return None

    async def _search(self, resource_type: str, params: Sequence[tuple[str, str]],
                      limit: int) -> list[Resource]:
        found = await find_matches(self.ctx, resource_type, list(params),
                                   now=datetime.now(UTC), limit=limit)
        return [body(stored) for stored in found]


def body(stored: Any) -> Resource:
    """A stored version's JSON."""
    loaded: Resource = orjson.loads(stored.body or b"{}")
    return loaded
