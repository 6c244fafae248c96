"""SQLite adapter only: indexes serve the hot queries, the file is durable and shareable."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fhir_server.fhir.errors import StoreUnavailable
from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    ReferenceMatch,
    SortKey,
    StringMatch,
    TokenEntry,
    TokenMatch,
)
from fhir_server.store.protocol import WriteConflict
from fhir_server.store.sqlite import SqliteStore
from fhir_server.store.sqlite_query import prefix_upper_bound

from .factories import fields_of, ids, put, version, where


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An opened SQLite store on a temp file in directories that do not exist yet."""
    store = SqliteStore(str(tmp_path / "nested" / "dir" / "store.db"))
    await store.open()
    yield store
    await store.close()


def index_searches(plan: list[str], index_name: str) -> bool:
    """Whether SQLite searches (not scans) the given index somewhere in the plan."""
    return any(line.startswith("SEARCH") and f"INDEX {index_name} " in line for line in plan)


def driven_by_matches(plan: list[str]) -> bool:
    """Whether resources are fetched by id from the matches, not by walking the whole type."""
    return (index_searches(plan, "sqlite_autoindex_resources_1")
            and not index_searches(plan, "resources_type_updated")
            and not any(line.startswith("SCAN") for line in plan))


async def test_token_search_uses_the_token_index(sqlite_store: SqliteStore) -> None:
    plan = sqlite_store.query_plan(where("Slot", TokenMatch("status", None, "free")))

    assert index_searches(plan, "idx_token_value"), plan
    assert driven_by_matches(plan), plan


async def test_reference_search_uses_the_reference_index(sqlite_store: SqliteStore) -> None:
    typed = sqlite_store.query_plan(
        where("Slot", ReferenceMatch("schedule", "Schedule", "sch1")))
    untyped = sqlite_store.query_plan(where("Slot", ReferenceMatch("schedule", None, "sch1")))

    assert index_searches(typed, "idx_reference_target"), typed
    assert index_searches(untyped, "idx_reference_target"), untyped
    assert driven_by_matches(typed) and driven_by_matches(untyped), typed + untyped


async def test_date_range_search_uses_the_date_index(sqlite_store: SqliteStore) -> None:
    plan = sqlite_store.query_plan(where("Slot", DateMatch("start", low_ge=0, low_lt=10)))

    assert index_searches(plan, "idx_date_low"), plan
    assert driven_by_matches(plan), plan


async def test_slot_finding_query_is_driven_by_its_most_selective_clause(
        sqlite_store: SqliteStore) -> None:
    query = where("Slot", DateMatch("start", low_ge=0, low_lt=10),
                  TokenMatch("status", None, "free"),
                  ReferenceMatch("schedule", "Schedule", "sch1"),
                  sort=(SortKey("start", "date"),))

    plan = sqlite_store.query_plan(query)

    # The reference drives; the broad date range and the status are checked per candidate
    # on the candidate's own index rows, never by materializing every matching id.
    assert index_searches(plan, "idx_reference_target"), plan
    for owner_index in ["idx_token_owner", "idx_date_owner"]:
        assert index_searches(plan, owner_index), plan
    assert not index_searches(plan, "idx_date_low"), plan
    assert driven_by_matches(plan), plan


async def test_or_clause_is_driven_by_the_union_of_its_matches(
        sqlite_store: SqliteStore) -> None:
    either = Clause((TokenMatch("status", None, "free"),
                     TokenMatch("status", None, "busy-tentative")))

    plan = sqlite_store.query_plan(where("Slot", either, sort=(SortKey("_id", "id"),)))

    assert index_searches(plan, "idx_token_value") and driven_by_matches(plan), plan


async def test_string_prefix_search_uses_the_string_index(sqlite_store: SqliteStore) -> None:
    plan = sqlite_store.query_plan(where("Practitioner", StringMatch("name", "mu")))

    assert index_searches(plan, "idx_string_normalized"), plan


def test_prefix_upper_bound_is_the_least_string_above_the_prefix() -> None:
    assert prefix_upper_bound("abc") == "abd"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\ud7ff") == "\ue000"
    assert prefix_upper_bound("") is None
    assert prefix_upper_bound("\U0010ffff") is None


async def test_open_creates_the_directory_and_uses_wal(sqlite_store: SqliteStore) -> None:
    assert Path(sqlite_store.path).is_file()
    other = SqliteStore(sqlite_store.path)
    await other.open()  # a second connection to the same file opens without error
    try:
        connection = sqlite3.connect(sqlite_store.path)
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.close()
    finally:
        await other.close()


async def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    first = SqliteStore(path)
    await first.open()
    await put(first, "Slot", "s1", status="free", index=(TokenEntry("status", None, "free"),))
    await first.close()

    second = SqliteStore(path)
    await second.open()
    await second.open()  # idempotent
    try:
        current = await second.read("Slot", "s1")
        assert current is not None and fields_of(current)["status"] == "free"
        assert ids(await second.search(where("Slot", TokenMatch("status", None, "free")))) == [
            "s1"]
    finally:
        await second.close()


async def test_a_schema_1_file_gains_patients_columns_and_its_versions_read_as_not_known(
        tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old = sqlite3.connect(path)
    for table, key in (("resources", "type, id"), ("versions", "type, id, version_id")):
        old.execute(f"CREATE TABLE {table} (type TEXT NOT NULL, id TEXT NOT NULL, "
                    "version_id INTEGER NOT NULL, last_updated INTEGER NOT NULL, "
                    "deleted INTEGER NOT NULL, method TEXT NOT NULL, body BLOB, "
                    f"PRIMARY KEY ({key}))")
        old.execute(f"INSERT INTO {table} VALUES ('Appointment', 'a1', 1, 0, 0, 'POST', ?)",
                    (b'{"resourceType":"Appointment","id":"a1"}',))
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    store = SqliteStore(str(path))
    await store.open()
    try:
        current = await store.read("Appointment", "a1")
        version_1 = await store.read_version("Appointment", "a1", 1)
        await put(store, "Appointment", "a1", 2, patients=("Patient/p1",))
        updated = await store.read("Appointment", "a1")
    finally:
        await store.close()

    assert current is not None and current.patients is None
    assert version_1 is not None and version_1.patients is None
    assert updated is not None and updated.patients == ("Patient/p1",)
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 2


async def test_memory_database_works(tmp_path: Path) -> None:
    store = SqliteStore(":memory:")
    await store.open()
    await put(store, "Slot", "s1")
    assert (await store.read("Slot", "s1")) is not None
    await store.close()


async def test_ping_answers_when_open_and_raises_when_closed(sqlite_store: SqliteStore) -> None:
    await sqlite_store.ping()
    await sqlite_store.close()

    with pytest.raises(StoreUnavailable):
        await sqlite_store.ping()
    with pytest.raises(StoreUnavailable):
        await sqlite_store.read("Slot", "s1")


async def test_opening_a_file_that_is_not_a_database_reports_it_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    path.write_bytes(b"not a database" * 512)
    for suffix in ["-wal", "-shm"]:
        Path(f"{path}{suffix}").unlink(missing_ok=True)

    with pytest.raises(StoreUnavailable):
        await store.open()


async def test_connections_on_one_file_claim_a_slot_exactly_once(
        sqlite_store: SqliteStore) -> None:
    await put(sqlite_store, "Slot", "s1", status="free")
    await sqlite_store.close()
    claimants = 8
    barrier = threading.Barrier(claimants)
    outcomes: list[str] = []

    def claim(n: int) -> None:
        """One independent connection, as another server process would have."""
        async def run() -> str:
            store = SqliteStore(sqlite_store.path)
            await store.open()
            barrier.wait()
            try:
                await store.commit([version("Slot", "s1", 2, match={"status": "free"},
                                            status="busy", holder=n)])
                return "won"
            except WriteConflict:
                return "lost"
            finally:
                await store.close()
        outcomes.append(asyncio.run(run()))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(claimants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["lost"] * (claimants - 1) + ["won"]
    await sqlite_store.open()
    current = await sqlite_store.read("Slot", "s1")
    assert current is not None and current.version_id == 2
