"""SQLite audit log only: one row per event with its first references inline, the rest (and
every reference of rows written in the earlier layout) in `audit_ref`, all found alike."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fhir_server.fhir.search.model import Clause, ReferenceMatch, StoreQuery
from fhir_server.store.protocol import AuditEntry
from fhir_server.store.sqlite_audit import COLUMNS, SqliteAuditLog, _where

from .test_audit_log import entry

# The audit log as the previous release created it: every reference in `audit_ref`.
EARLIER_LAYOUT = """
CREATE TABLE audit_log (
    id TEXT NOT NULL PRIMARY KEY, recorded INTEGER NOT NULL,
    subtype TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL,
    client_id TEXT, client_key TEXT, record BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX audit_log_recorded ON audit_log (recorded, id);
CREATE TABLE audit_ref (
    param TEXT NOT NULL, target_id TEXT NOT NULL, target_type TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (param, target_id, target_type, id)) WITHOUT ROWID;
INSERT INTO audit_log VALUES ('old', 1, 'read', 'R', '0', 'Portal', 'portal', x'7b7d');
INSERT INTO audit_ref VALUES ('entity', 'a1', 'Appointment', 'old'),
    ('patient', 'p1', 'Patient', 'old'), ('agent', 'd1', 'Practitioner', 'old');
"""


async def found(log: SqliteAuditLog, *predicates: ReferenceMatch) -> list[str]:
    """Ids of the events matching any of `predicates`, oldest first."""
    page = await log.search(StoreQuery("AuditEvent", where=(Clause(predicates),)))
    return sorted(logged.id for logged in page.entries)


async def test_rows_of_the_earlier_layout_are_found_beside_new_ones(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    with sqlite3.connect(path) as db:
        db.executescript(EARLIER_LAYOUT)
    log = SqliteAuditLog(path)
    await log.open()
    try:
        await log.append([entry("new", 5, refs=(
            ("entity", "Appointment", "a1"), ("patient", "Patient", "p1"),
            ("agent", "Practitioner", "d1")))])

        for predicate in (ReferenceMatch("entity", "Appointment", "a1"),
                          ReferenceMatch("patient", None, "p1"),
                          ReferenceMatch("agent", "Practitioner", "d1")):
            assert await found(log, predicate) == ["new", "old"], predicate
        old, new = await log.read("old"), await log.read("new")
        assert old is not None and old.record == b"{}"  # kept as a BLOB: read back as bytes
        assert new is not None and new.record == '{"n":"new"}'  # now kept as text
    finally:
        await log.close()


async def test_references_past_the_first_of_a_kind_are_found_too(tmp_path: Path) -> None:
    log = SqliteAuditLog(str(tmp_path / "store.db"))
    await log.open()
    try:
        await log.append([entry("e1", 0, refs=(
            ("patient", "Patient", "p1"), ("patient", "Patient", "p2"),
            ("entity", "Appointment", "a1"), ("entity", "Slot", "s1"),
            ("patient", "Group", "g1")))])

        assert await found(log, ReferenceMatch("patient", "Patient", "p2")) == ["e1"]
        assert await found(log, ReferenceMatch("entity", None, "s1")) == ["e1"]
        assert await found(log, ReferenceMatch("patient", "Group", "g1")) == ["e1"]
        assert await found(log, ReferenceMatch("patient", "Patient", "g1")) == []
    finally:
        await log.close()


def test_reference_searches_use_the_column_indexes(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    log = SqliteAuditLog(path)
    log._open()  # noqa: SLF001 - the schema, without an event loop
    log._connection.close()  # type: ignore[union-attr]  # noqa: SLF001
    with sqlite3.connect(path) as db:
        for param, index in (("entity", "audit_log_entity"), ("patient", "audit_log_patient"),
                             ("agent", "audit_log_agent")):
            where, params = _where((Clause((ReferenceMatch(param, None, "x1"),)),))
            plan = [row[3] for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT id, record FROM audit_log a WHERE {where}", params)]
            assert any(f"INDEX {index} " in line for line in plan if "SEARCH a" in line), plan
            assert not any(line.startswith("SCAN a") for line in plan), plan


def test_an_entrys_first_fields_are_the_rows_columns_in_order() -> None:
    # The adapter inserts `entry[:len(COLUMNS)]` as the row, with no per-field mapping.
    fields = AuditEntry._fields[:len(COLUMNS)]
    assert fields == tuple("recorded_us" if c == "recorded" else c for c in COLUMNS)
