"""The queries `$find-slots` sends are driven by indexes on SQLite, never by a scan of a type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir.search.model import StoreQuery
from fhir_server.scheduling.find_params import SlotQuery
from fhir_server.services.context import FhirContext
from fhir_server.services.find_slots import busy_query, find_slots, free_slots_query
from fhir_server.services.versions import next_version
from fhir_server.services.wiring import make_context
from fhir_server.settings import REPO_ROOT
from fhir_server.store.protocol import SearchPage
from fhir_server.store.sqlite import SqliteStore
from tests.integration.store_contract.test_sqlite_specific import driven_by_matches

NOW = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
START = datetime(2030, 3, 4, tzinfo=UTC)
END = START + timedelta(days=14)


class RecordingStore:
    """The SQLite store, remembering every search it is asked."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.searches: list[StoreQuery] = []

    async def search(self, query: StoreQuery) -> SearchPage:
        self.searches.append(query)
        return await self.store.search(query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    adapter = SqliteStore(str(tmp_path / "store.db"))
    await adapter.open()
    yield adapter
    await adapter.close()


async def put(ctx: FhirContext, resource: dict[str, Any]) -> None:
    await ctx.store.commit([next_version(ctx, resource, resource_type=resource["resourceType"],
                                         id=resource["id"], current=None, now=NOW,
                                         method="PUT")])


async def test_find_slots_loads_slots_and_appointments_through_indexes(
        store: SqliteStore) -> None:
    recording = RecordingStore(store)
    ctx = make_context(recording, capability_dir=REPO_ROOT / "capability",  # type: ignore[arg-type]
                       base_url="http://testserver/fhir")
    for name in ("ada", "bo"):
        await put(ctx, {"resourceType": "Schedule", "id": f"s-{name}",
                        "actor": [{"reference": f"Practitioner/{name}"}]})
        await put(ctx, {"resourceType": "Slot", "id": f"{name}-1", "status": "free",
                        "schedule": {"reference": f"Schedule/s-{name}"},
                        "start": "2030-03-04T09:00:00Z", "end": "2030-03-04T09:30:00Z"})
    request = SlotQuery(start=START, end=END, patient="Patient/p1",
                        actors=(("Practitioner", ("Practitioner/ada", "Practitioner/bo")),))

    result = await find_slots(ctx, request, now=NOW)

    assert result.total == 1
    by_type = {query.resource_type: query for query in recording.searches}
    assert by_type["Slot"] == free_slots_query(["s-ada", "s-bo"], START, END)
    assert by_type["Appointment"] == busy_query(
        {"Practitioner/ada", "Practitioner/bo", "Patient/p1"}, START, END)
    for query in recording.searches:
        plan = store.query_plan(query)
        assert driven_by_matches(plan), (query.resource_type, plan)


async def test_the_slot_and_busy_queries_of_a_large_find_use_the_indexes(
        store: SqliteStore) -> None:
    schedules = [f"s{i}" for i in range(11)]
    actors = [*(f"Practitioner/p{i}" for i in range(10)), "Location/room", "Patient/p1"]

    for query in (free_slots_query(schedules, START, END), busy_query(actors, START, END)):
        plan = store.query_plan(query)
        assert any("INDEX idx_reference_target" in line for line in plan), plan
        assert any("INDEX idx_date_owner" in line for line in plan), plan
        assert driven_by_matches(plan), plan
