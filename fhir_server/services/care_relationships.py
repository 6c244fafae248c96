"""Which patients a doctor sees: an Appointment (any status) naming both is the relationship.

The API lets a doctor read only these patients. `has_seen` asks the store one indexed
question per (doctor, patient) and remembers a yes for a minute: an appointment is only ever
deleted by an administrator, so a yes rarely goes stale, while a no is asked again so a new
booking counts at once. `seen_patients` lists the patients of the doctor's most recent
`SEEN_LIMIT` appointments, for narrowing searches and includes; it is kept a few seconds.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Final, Generic, TypeVar

import orjson

from fhir_server.fhir.search.model import Clause, ReferenceMatch, SortKey, StoreQuery
from fhir_server.services.context import FhirContext
from fhir_server.services.schedule_owner import local_reference
from fhir_server.store.protocol import Store

SEEN_LIMIT: Final = 2000  # appointments read to list a doctor's patients, newest first
RELATION_TTL_S: Final = 60.0
PATIENT_LIST_TTL_S: Final = 5.0
CACHE_SIZE: Final = 4096

V = TypeVar("V")


class _TtlCache(Generic[V]):
    """A small LRU whose entries expire; per store, so test apps never share answers."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: Hashable, value: V) -> None:
        self._entries[key] = (time.monotonic() + self._ttl_s, value)
        self._entries.move_to_end(key)
        if len(self._entries) > CACHE_SIZE:
            self._entries.popitem(last=False)


_known_relations: weakref.WeakKeyDictionary[Store, _TtlCache[bool]] = weakref.WeakKeyDictionary()
_patient_lists: weakref.WeakKeyDictionary[Store, _TtlCache[frozenset[str]]] = (
    weakref.WeakKeyDictionary())


def _by_practitioner(practitioner_id: str) -> Clause:
    return Clause((ReferenceMatch("practitioner", "Practitioner", practitioner_id),))


async def has_seen(ctx: FhirContext, practitioner_id: str, patient_id: str) -> bool:
    """True when an Appointment has both the practitioner and the patient as participants."""
    cache = _known_relations.setdefault(ctx.store, _TtlCache(RELATION_TTL_S))
    key = (practitioner_id, patient_id)
    if cache.get(key):
        return True
    query = StoreQuery("Appointment", where=(
        _by_practitioner(practitioner_id),
        Clause((ReferenceMatch("patient", "Patient", patient_id),))), limit=1, with_total=False)
    seen = bool((await ctx.store.search(query)).resources)
    if seen:
        cache.put(key, True)
    return seen


async def seen_patients(ctx: FhirContext, practitioner_id: str) -> frozenset[str]:
    """Ids of the patients in the practitioner's `SEEN_LIMIT` most recent appointments."""
    cache = _patient_lists.setdefault(ctx.store, _TtlCache(PATIENT_LIST_TTL_S))
    found = cache.get(practitioner_id)
    if found is not None:
        return found
    query = StoreQuery("Appointment", where=(_by_practitioner(practitioner_id),),
                       sort=(SortKey("date", "date", descending=True),), limit=SEEN_LIMIT,
                       with_total=False)
    page = await ctx.store.search(query)
    found = frozenset(patient for stored in page.resources if stored.body is not None
                      for patient in _patients_of(orjson.loads(stored.body), ctx.base_url))
    cache.put(practitioner_id, found)
    return found


def _patients_of(appointment: dict[str, Any], base_url: str) -> list[str]:
    """Ids of the local Patient participants of an Appointment."""
    ids = []
    for participant in appointment.get("participant") or ():
        reference = local_reference((participant.get("actor") or {}).get("reference"), base_url)
        if reference is not None and reference.startswith("Patient/"):
            ids.append(reference.removeprefix("Patient/"))
    return ids
