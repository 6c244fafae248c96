"""The embedded `Store` adapter: one SQLite file in WAL mode, through the stdlib `sqlite3`.

Concurrency model: the server is one asyncio process with one connection, and every call
runs its SQL synchronously on the event loop (microseconds) without awaiting in the middle,
so no coroutine ever sees or interleaves with another's transaction. Writers take the write
lock up front (`BEGIN IMMEDIATE`) and wait up to `busy_timeout` for it, so several processes
sharing one file stay correct too. A lock guards the connection in case a caller uses threads.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from fhir_server.fhir.errors import StoreUnavailable
from fhir_server.fhir.search.model import (
    DateEntry,
    IndexEntry,
    ReferenceEntry,
    StoreQuery,
    StringEntry,
    TokenEntry,
)
from fhir_server.store.protocol import (
    AuditLog,
    HistoryPage,
    JsonScalar,
    SearchPage,
    StoredResource,
    VersionWrite,
    WriteConflict,
)
from fhir_server.store.sqlite_audit import SqliteAuditLog
from fhir_server.store.sqlite_query import compile_search
from fhir_server.store.timestamps import from_micros, to_micros

SCHEMA_VERSION = 2  # 2: `patients` on resources and versions

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    type TEXT NOT NULL, id TEXT NOT NULL, version_id INTEGER NOT NULL,
    last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, method TEXT NOT NULL, body BLOB,
    patients TEXT, PRIMARY KEY (type, id)
);
CREATE INDEX IF NOT EXISTS resources_type_updated ON resources (type, last_updated, id);

CREATE TABLE IF NOT EXISTS versions (
    type TEXT NOT NULL, id TEXT NOT NULL, version_id INTEGER NOT NULL,
    last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, method TEXT NOT NULL, body BLOB,
    patients TEXT, PRIMARY KEY (type, id, version_id)
);
CREATE INDEX IF NOT EXISTS versions_updated ON versions (last_updated);
CREATE INDEX IF NOT EXISTS versions_type_updated ON versions (type, last_updated);

CREATE TABLE IF NOT EXISTS idx_token (
    type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_token_value ON idx_token (type, param, code, system, id);
CREATE INDEX IF NOT EXISTS idx_token_owner ON idx_token (type, id, param, code);

CREATE TABLE IF NOT EXISTS idx_reference (
    type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    target_type TEXT, target_id TEXT, url TEXT);
CREATE INDEX IF NOT EXISTS idx_reference_target
    ON idx_reference (type, param, target_id, target_type, id);
CREATE INDEX IF NOT EXISTS idx_reference_url ON idx_reference (type, param, url, id);
CREATE INDEX IF NOT EXISTS idx_reference_owner ON idx_reference (type, id, param, target_id);

CREATE TABLE IF NOT EXISTS idx_date (
    type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    low INTEGER NOT NULL, high INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_date_low ON idx_date (type, param, low, high, id);
CREATE INDEX IF NOT EXISTS idx_date_high ON idx_date (type, param, high, low, id);
CREATE INDEX IF NOT EXISTS idx_date_owner ON idx_date (type, id, param, low, high);

CREATE TABLE IF NOT EXISTS idx_string (
    type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    normalized TEXT NOT NULL, exact TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_string_normalized ON idx_string (type, param, normalized, id);
CREATE INDEX IF NOT EXISTS idx_string_exact ON idx_string (type, param, exact, id);
CREATE INDEX IF NOT EXISTS idx_string_owner ON idx_string (type, id, param, normalized);
"""

INDEX_TABLES = ("idx_token", "idx_reference", "idx_date", "idx_string")
_COLUMNS = "type, id, version_id, last_updated, deleted, method, body, patients"
_VERSION_TABLES = ("resources", "versions")
_ID_CHUNK = 500  # stays far below SQLite's bound-parameter limit

Row = tuple[str, str, int, int, int, str, bytes | None, str | None]


def json_path(dotted: str) -> str:
    """`meta.versionId` as the SQLite JSON path `$."meta"."versionId"` (digits index arrays)."""
    path = "$"
    for part in dotted.split("."):
        path += f"[{part}]" if part.isdigit() else '."' + part.replace('"', '\\"') + '"'
    return path


def _stored(row: Row) -> StoredResource:
    """A row of `resources` or `versions` as the protocol's value."""
    resource_type, id_, version_id, updated, deleted, method, body, patients = row
    return StoredResource(resource_type=resource_type, id=id_, version_id=version_id,
                          last_updated=from_micros(updated), deleted=bool(deleted),
                          method=method,  # type: ignore[arg-type]
                          body=bytes(body) if body is not None else None,
                          patients=tuple(patients.split()) if patients is not None else None)


class SqliteStore:
    """`Store` on one SQLite file (or `":memory:"`), with index tables for search."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._audit_log = SqliteAuditLog(path, busy_timeout_ms=busy_timeout_ms)

    @property
    def audit_log(self) -> AuditLog:
        """The audit trail: tables in the same file, written through their own connection."""
        return self._audit_log

    async def open(self) -> None:
        """Create the file's directory, connect, set WAL, and create the schema idempotently."""
        if self._connection is not None:
            return
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = None
        try:
            connection = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.executescript(f"BEGIN IMMEDIATE; {SCHEMA}")  # open until COMMIT
            _add_patients_columns(connection)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection is not None:
                connection.close()
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._connection = connection
        await self._audit_log.open()

    async def close(self) -> None:
        """Close the connection; the WAL is checkpointed by SQLite on the last close."""
        await self._audit_log.close()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless a query answers (a corrupt file counts as down)."""
        with self._session() as db:
            try:
                db.execute("SELECT 1 FROM resources LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    async def read(self, resource_type: str, id: str) -> StoredResource | None:
        """The current version, tombstones included."""
        with self._session() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM resources WHERE type = ? AND id = ?",
                             (resource_type, id)).fetchone()
        return _stored(row) if row else None

    async def read_version(self, resource_type: str, id: str,
                           version_id: int) -> StoredResource | None:
        """One version from the full history."""
        with self._session() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM versions WHERE type = ? AND id = ? AND version_id = ?",
                (resource_type, id, version_id)).fetchone()
        return _stored(row) if row else None

    async def read_many(self, resource_type: str, ids: Sequence[str]) -> list[StoredResource]:
        """Current non-deleted versions in the order asked; missing or deleted ids are skipped."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, StoredResource] = {}
        with self._session() as db:
            for start in range(0, len(wanted), _ID_CHUNK):
                chunk = wanted[start:start + _ID_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM resources "
                    f"WHERE type = ? AND id IN ({marks}) AND deleted = 0",
                    (resource_type, *chunk)).fetchall()
                found.update((row[1], _stored(row)) for row in rows)
        return [found[id_] for id_ in wanted if id_ in found]

    async def commit(self, writes: Sequence[VersionWrite]) -> list[StoredResource]:
        """Check every expectation, then append every version, in one IMMEDIATE transaction."""
        if not writes:
            return []
        with self._session() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for write in writes:
                    self._check_expectations(db, write)
                    self._append(db, write)
            except BaseException:
                if db.in_transaction:  # SQLite may already have rolled back, e.g. on a full disk
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return [_stored_from_write(write) for write in writes]

    async def search(self, query: StoreQuery) -> SearchPage:
        """One page of current resources and, when asked, the count, from one snapshot."""
        page_sql, count_sql = compile_search(query)
        with self._session() as db:
            db.execute("BEGIN")
            try:
                rows = db.execute(page_sql.text, page_sql.params).fetchall()
                total = (db.execute(count_sql.text, count_sql.params).fetchone()[0]
                         if query.with_total else None)
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")
        return SearchPage(resources=[_stored(row) for row in rows], total=total)

    async def history(self, resource_type: str | None, id: str | None, *,
                      since: datetime | None = None, offset: int = 0,
                      limit: int = 50, exclude_types: Sequence[str] = ()) -> HistoryPage:
        """Versions newest first at instance, type or system level, and their count."""
        conditions: list[str] = []
        params: list[str | int] = []
        if resource_type is not None:
            conditions.append("type = ?")
            params.append(resource_type)
            if id is not None:
                conditions.append("id = ?")
                params.append(id)
        elif exclude_types:
            conditions.append(f"type NOT IN ({', '.join('?' for _ in exclude_types)})")
            params.extend(exclude_types)
        if since is not None:
            conditions.append("last_updated >= ?")
            params.append(to_micros(since))
        where = " AND ".join(conditions) or "1"
        with self._session() as db:
            db.execute("BEGIN")
            try:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM versions WHERE {where} "
                    "ORDER BY last_updated DESC, version_id DESC, type, id LIMIT ? OFFSET ?",
                    (*params, max(limit, 0), max(offset, 0))).fetchall()
                total = db.execute(f"SELECT COUNT(*) FROM versions WHERE {where}",
                                   params).fetchone()[0]
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")
        return HistoryPage(versions=[_stored(row) for row in rows], total=total)

    def query_plan(self, query: StoreQuery) -> list[str]:
        """SQLite's plan for a search page, so tests and operators can see the indexes used."""
        page_sql, _ = compile_search(query)
        with self._session() as db:
            rows = db.execute(f"EXPLAIN QUERY PLAN {page_sql.text}", page_sql.params).fetchall()
        return [row[-1] for row in rows]

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """The open connection, held exclusively; SQLite failures surface as `StoreUnavailable`."""
        with self._lock:
            if self._connection is None:
                raise StoreUnavailable("the SQLite store is not open")
            try:
                yield self._connection
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    @staticmethod
    def _check_expectations(db: sqlite3.Connection, write: VersionWrite) -> None:
        """Raise `WriteConflict` unless the current version and `match` fields are as expected."""
        tests, params = _match_tests(write.match)
        row = db.execute(f"SELECT version_id, {tests} FROM resources WHERE type = ? AND id = ?",
                         (*params, write.resource_type, write.id)).fetchone()
        actual: int | None = row[0] if row else None
        if row is None:  # nothing to match against: only "absent" expectations hold
            matches = all(value is None for value in write.match.values())
        else:
            matches = bool(row[1])
        if (actual or 0) != write.expected_version or not matches:
            raise WriteConflict(write.resource_type, write.id, write.expected_version, actual)

    @staticmethod
    def _append(db: sqlite3.Connection, write: VersionWrite) -> None:
        """Upsert the current row, add the version, and replace the resource's index rows."""
        patients = None if write.patients is None else " ".join(write.patients)
        values = (write.resource_type, write.id, write.version_id, to_micros(write.last_updated),
                  int(write.deleted), write.method, write.body, patients)
        db.execute(
            f"INSERT INTO resources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (type, id) DO UPDATE SET version_id = excluded.version_id, "
            "last_updated = excluded.last_updated, deleted = excluded.deleted, "
            "method = excluded.method, body = excluded.body, patients = excluded.patients",
            values)
        db.execute(f"INSERT INTO versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
        if write.expected_version:  # a first version has no index rows to replace
            for table in INDEX_TABLES:
                db.execute(f"DELETE FROM {table} WHERE type = ? AND id = ?",
                           (write.resource_type, write.id))
        if not write.deleted:
            _insert_index(db, write.resource_type, write.id, write.index)


def _add_patients_columns(db: sqlite3.Connection) -> None:
    """Give a file of schema 1 its `patients` columns: the references, space-separated (FHIR
    ids have no spaces). No rewrite: existing versions keep NULL, which means "not known",
    and the audit trail reads their bodies instead."""
    for table in _VERSION_TABLES:
        if "patients" not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN patients TEXT")


def _match_tests(match: Mapping[str, JsonScalar]) -> tuple[str, list[JsonScalar]]:
    """One SQL boolean over the current body for every `match` entry (None = absent or null)."""
    items = list(match.items())
    if not items:
        return "1", []
    tests = " AND ".join("json_extract(CAST(body AS TEXT), ?) IS ?" for _ in items)
    params: list[JsonScalar] = []
    for dotted, value in items:
        params.extend((json_path(dotted), value))
    return f"({tests})", params


def _insert_index(db: sqlite3.Connection, resource_type: str, id: str,
                  entries: Sequence[IndexEntry]) -> None:
    """Store each entry in its table; an empty system is stored as no system."""
    tokens, references, dates, strings = [], [], [], []
    for entry in entries:
        if isinstance(entry, TokenEntry):
            tokens.append((resource_type, id, entry.param, entry.system or None, entry.code))
        elif isinstance(entry, ReferenceEntry):
            references.append((resource_type, id, entry.param, entry.target_type,
                               entry.target_id, entry.url))
        elif isinstance(entry, DateEntry):
            dates.append((resource_type, id, entry.param, entry.low, entry.high))
        elif isinstance(entry, StringEntry):
            strings.append((resource_type, id, entry.param, entry.normalized, entry.exact))
        else:
            raise TypeError(f"unsupported index entry: {entry!r}")
    for sql, rows in (("INSERT INTO idx_token VALUES (?, ?, ?, ?, ?)", tokens),
                      ("INSERT INTO idx_reference VALUES (?, ?, ?, ?, ?, ?)", references),
                      ("INSERT INTO idx_date VALUES (?, ?, ?, ?, ?)", dates),
                      ("INSERT INTO idx_string VALUES (?, ?, ?, ?, ?)", strings)):
        if rows:
            db.executemany(sql, rows)


def _stored_from_write(write: VersionWrite) -> StoredResource:
    """What was written, with the time normalized as a read would return it."""
    return StoredResource(resource_type=write.resource_type, id=write.id,
                          version_id=write.version_id,
                          last_updated=from_micros(to_micros(write.last_updated)),
                          deleted=write.deleted, method=write.method, body=write.body,
                          patients=write.patients)
