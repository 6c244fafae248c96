"""The SQLite audit log: table `audit_log` (and `audit_ref`) in the store's file.

It has its own connection, used only from worker threads (`asyncio.to_thread`) under a lock:
a batch insert is one transaction that runs while the event loop keeps serving requests, and
in WAL mode readers never wait for it. A batch goes in as a few multi-row INSERTs rather than
one statement per row, since sqlite3 hands the GIL back and forth on every statement step and
the event loop, which needs it, must wait each time.

One row per event: its first `entity`, `patient` and `agent` references are columns with
partial indexes, since most events have at most one of each (an `AuditEntry`'s first fields
are the row); any further ones (a search naming several patients) are rows of `audit_ref`.
Rows of the earlier layout keep all their references in `audit_ref` and are found the same
way.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final, TypeVar

from fhir_server.fhir.errors import StoreUnavailable
from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    IdMatch,
    Predicate,
    ReferenceMatch,
    SortKey,
    StoreQuery,
    StringMatch,
    TokenMatch,
)
from fhir_server.store.audit_fields import TOKEN_FIELDS, recorded_bounds
from fhir_server.store.protocol import AuditEntry, AuditPage, LoggedAudit

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT NOT NULL PRIMARY KEY, recorded INTEGER NOT NULL,
    subtype TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL,
    client_id TEXT, client_key TEXT, record TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_log_recorded ON audit_log (recorded, id);
CREATE TABLE IF NOT EXISTS audit_ref (
    param TEXT NOT NULL, target_id TEXT NOT NULL, target_type TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (param, target_id, target_type, id)) WITHOUT ROWID;
"""
# Added to tables of the earlier layout by ALTER TABLE (no rewrite; their rows keep NULLs).
REFERENCE_COLUMNS: Final = ("entity_type", "entity_id", "patient_id", "agent_type", "agent_id")
REFERENCE_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS audit_log_entity ON audit_log (entity_id, entity_type) "
    "WHERE entity_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS audit_log_patient ON audit_log (patient_id) "
    "WHERE patient_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS audit_log_agent ON audit_log (agent_id, agent_type) "
    "WHERE agent_id IS NOT NULL",
)
COLUMNS: Final = ("id", "recorded", "subtype", "action", "outcome", "client_id", "client_key",
                  "record", *REFERENCE_COLUMNS)
CHUNK_ROWS: Final = 128  # rows per INSERT (x13 parameters, well under SQLite's 32766)
_SORT_COLUMNS = {"date": "recorded", "lastUpdated": "recorded", "id": "id"}
T = TypeVar("T")
Params = list[str | int]


class SqliteAuditLog:
    """`AuditLog` on the SQLite file at `path` (or its own `":memory:"` database)."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Connect and create the tables idempotently (the store has set WAL mode)."""
        if self._connection is None:
            await asyncio.to_thread(self._open)

    async def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        """Insert the batch in one transaction; ids already stored are skipped."""
        if entries:
            await self._run(lambda db: _insert(db, entries))

    async def read(self, id: str) -> LoggedAudit | None:
        """One row by id."""
        row = await self._run(lambda db: db.execute(
            "SELECT id, record FROM audit_log WHERE id = ?", (id,)).fetchone())
        return LoggedAudit(row[0], row[1]) if row else None

    async def search(self, query: StoreQuery) -> AuditPage:
        """One page and, when asked, the count, from one snapshot."""
        where, params = _where(query.where)
        page_sql = (f"SELECT id, record FROM audit_log a WHERE {where} "
                    f"ORDER BY {_order(query.sort)} LIMIT ? OFFSET ?")

        def page(db: sqlite3.Connection) -> AuditPage:
            db.execute("BEGIN")
            try:
                rows = db.execute(page_sql, (*params, max(query.limit, 0),
                                             max(query.offset, 0))).fetchall()
                total = (db.execute(f"SELECT COUNT(*) FROM audit_log a WHERE {where}",
                                    params).fetchone()[0] if query.with_total else None)
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")
            return AuditPage([LoggedAudit(id_, record) for id_, record in rows], total)

        return await self._run(page)

    def _open(self) -> None:
        connection = None
        try:
            connection = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.executescript(f"BEGIN IMMEDIATE; {SCHEMA}")  # stays open until COMMIT
            have = {row[1] for row in connection.execute("PRAGMA table_info(audit_log)")}
            for column in REFERENCE_COLUMNS:
                if column not in have:
                    connection.execute(f"ALTER TABLE audit_log ADD COLUMN {column} TEXT")
            for index in REFERENCE_INDEXES:
                connection.execute(index)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection is not None:
                connection.close()
            raise StoreUnavailable(f"cannot open the SQLite audit log {self.path}: {exc}") from exc
        with self._lock:
            self._connection = connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on the connection in a worker thread."""
        return await asyncio.to_thread(self._locked, work)

    def _locked(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._session() as db:
            return work(db)

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._connection is None:
                raise StoreUnavailable("the SQLite audit log is not open")
            try:
                yield self._connection
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite audit log {self.path}: {exc}") from exc


def _insert(db: sqlite3.Connection, entries: Sequence[AuditEntry]) -> None:
    width = len(COLUMNS)
    rows: list[str | int | bytes | None] = []
    for entry in entries:
        rows += entry[:width]  # an entry's first fields are the columns, in order
    extra = [(param, target, kind, entry.id)
             for entry in entries if entry.more_references
             for param, kind, target in entry.more_references]
    db.execute("BEGIN IMMEDIATE")
    try:
        start, left = 0, len(entries)
        while left:
            count = CHUNK_ROWS if left >= CHUNK_ROWS else 1 << (left.bit_length() - 1)
            db.execute(_insert_sql(count), rows[start * width:(start + count) * width])
            start, left = start + count, left - count
        if extra:
            db.executemany("INSERT OR IGNORE INTO audit_ref VALUES (?, ?, ?, ?)", extra)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@functools.cache
def _insert_sql(rows: int) -> str:
    """`INSERT OR IGNORE` of `rows` rows (a power of two up to CHUNK_ROWS: few statements to
    prepare, each kept in sqlite3's statement cache)."""
    values = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    return (f"INSERT OR IGNORE INTO audit_log ({', '.join(COLUMNS)}) VALUES "
            + ", ".join([values] * rows))


def _where(clauses: Sequence[Clause]) -> tuple[str, Params]:
    """Every clause AND-ed; each clause's predicates OR-ed, `NOT` when negated."""
    parts, params = [], []
    for clause in clauses:
        compiled = [_predicate(p) for p in clause.any_of]
        sql = " OR ".join(f"({text})" for text, _ in compiled) or "0"
        parts.append(f"NOT ({sql})" if clause.negate else f"({sql})")
        params.extend(value for _, values in compiled for value in values)
    return " AND ".join(parts) or "1", params


def _predicate(predicate: Predicate) -> tuple[str, Params]:
    if isinstance(predicate, IdMatch):
        return f"a.id IN ({', '.join('?' for _ in predicate.ids)})", list(predicate.ids)
    if isinstance(predicate, TokenMatch) and predicate.param in TOKEN_FIELDS:
        if predicate.code is None:
            return "1", []
        return f"a.{predicate.param} = ?", [predicate.code]
    if isinstance(predicate, ReferenceMatch) and predicate.target_id is not None:
        return _reference(predicate.param, predicate.target_type, predicate.target_id)
    if isinstance(predicate, DateMatch):
        lower, upper = recorded_bounds(predicate)
        tests = [(f"a.recorded {op} ?", bound) for op, bound in ((">=", lower), ("<", upper))
                 if bound is not None]
        return " AND ".join(text for text, _ in tests) or "1", [b for _, b in tests]
    if isinstance(predicate, StringMatch):
        if predicate.mode == "exact":
            return "a.client_id = ?", [predicate.value]
        escaped = predicate.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"{escaped}%" if predicate.mode == "startswith" else f"%{escaped}%"
        return "a.client_key LIKE ? ESCAPE '\\'", [pattern]
    raise ValueError(f"the audit log cannot search by {predicate!r}")


def _reference(param: str, kind: str | None, target: str) -> tuple[str, Params]:
    """A reference in the row's column for `param` or among its `audit_ref` rows."""
    sql = "SELECT id FROM audit_ref WHERE param = ? AND target_id = ?"
    params: Params = [param, target]
    if kind is not None:
        sql += " AND target_type = ?"
        params.append(kind)
    side = f"a.id IN ({sql})"
    if param == "patient":
        if kind not in (None, "Patient"):
            return side, params
        return f"a.patient_id = ? OR {side}", [target, *params]
    column = f"a.{param}_id = ?" + (f" AND a.{param}_type = ?" if kind is not None else "")
    inline: Params = [target] if kind is None else [target, kind]
    return f"({column}) OR {side}", [*inline, *params]


def _order(keys: Sequence[SortKey]) -> str:
    """The sort keys, then `id` in the first key's direction; newest first by default."""
    keys = keys or (SortKey("date", "date", descending=True),)
    columns: list[tuple[str, str]] = []
    for key in keys:
        column = _SORT_COLUMNS[key.kind]
        if all(column != seen for seen, _ in columns):
            columns.append((column, "DESC" if key.descending else "ASC"))
    if all(column != "id" for column, _ in columns):
        columns.append(("id", columns[0][1]))
    return ", ".join(f"a.{column} {direction}" for column, direction in columns)
