"""The embedded server's short-lived state, shared by every worker process of one host.

`fhir-scheduler serve --workers N` runs N processes, and a browser's or an app's next request
may reach any of them. What one request leaves for the next therefore lives in one SQLite file,
`data_dir/auth/state.db` (WAL, 0600), not in a process's memory:

- one-time values by kind and key (authorization codes, patient-picker tickets): `take` is a
  single `DELETE ... RETURNING`, so of two processes presenting the same code one gets it;
  keys are stored as SHA-256 digests, so the file holds no usable code or ticket;
- seen keys (client-assertion `jti`s): `first_use` is one upsert that only a first or an
  expired key gets through;
- failure counts per key with a window (login and client-authentication throttles), counted
  by one upsert;
- server secrets (the login form's CSRF key), created once by whichever process comes first.

Every call is one short statement in autocommit mode; rows past their expiry are ignored and
purged lazily, at most every `PURGE_INTERVAL_S` per process. Calls block for as long as the
file is locked by another writer (microseconds; `BUSY_TIMEOUT_S` at worst), so async callers
run them in the thread pool. Embedded mode is single-host; several hosts need an external IdP.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

BUSY_TIMEOUT_S: Final = 5.0
PURGE_INTERVAL_S: Final = 30.0
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS one_time (
    kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS one_time_expiry ON one_time (expires_at);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY, count INTEGER NOT NULL, last_at REAL NOT NULL,
    expires_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS failures_expiry ON failures (expires_at);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""


class AuthState:
    """The state file of one data dir, opened once per process and shared by its threads."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._purged_at = float("-inf")
        with self._lock:
            self._connected().executescript(SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path, *,
                    clock: Callable[[], float] = time.time) -> AuthState:
        return cls(data_dir / "auth" / "state.db", clock=clock)

    def put(self, kind: str, key: str, value: dict[str, Any], expires_at: float) -> None:
        """Keep `value` under (`kind`, `key`) until `expires_at`."""
        self._write("INSERT OR REPLACE INTO one_time VALUES (?, ?, ?, ?)",
                    (kind, _digest(key), json.dumps(value), expires_at))

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The live value, left in place."""
        rows = self._execute("SELECT value FROM one_time WHERE kind = ? AND key = ? "
                             "AND expires_at > ?", (kind, _digest(key), self._clock()))
        return json.loads(rows[0][0]) if rows else None

    def take(self, kind: str, key: str) -> dict[str, Any] | None:
        """The live value, removed in the same statement: across processes, one taker wins."""
        rows = self._write("DELETE FROM one_time WHERE kind = ? AND key = ? "
                           "RETURNING value, expires_at", (kind, _digest(key)))
        if not rows or rows[0][1] <= self._clock():
            return None
        return json.loads(rows[0][0])

    def first_use(self, kind: str, key: str, expires_at: float) -> bool:
        """True when `key` is new or its earlier use has expired; it is then remembered."""
        rows = self._write(
            "INSERT INTO one_time VALUES (?, ?, '{}', ?) ON CONFLICT (kind, key) DO UPDATE "
            "SET expires_at = excluded.expires_at WHERE one_time.expires_at <= ? RETURNING 1",
            (kind, _digest(key), expires_at, self._clock()))
        return bool(rows)

    def count_failure(self, key: str, window_s: float) -> None:
        """One more failure of `key`; the count restarts when the last one is `window_s` old."""
        now = self._clock()
        self._write(
            "INSERT INTO failures VALUES (?, 1, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN failures.expires_at <= excluded.last_at THEN 1 "
            "ELSE failures.count + 1 END, last_at = excluded.last_at, "
            "expires_at = excluded.expires_at", (key, now, now + window_s))

    def failures(self, key: str) -> tuple[int, float]:
        """The live failure count of `key` and when the last one happened (0 when none)."""
        rows = self._execute("SELECT count, last_at FROM failures WHERE key = ? "
                             "AND expires_at > ?", (key, self._clock()))
        return (int(rows[0][0]), float(rows[0][1])) if rows else (0, 0.0)

    def clear_failures(self, key: str) -> None:
        self._write("DELETE FROM failures WHERE key = ?", (key,))

    def secret(self, name: str) -> bytes:
        """A random 32-byte secret, the same in every process and across restarts."""
        self._write("INSERT OR IGNORE INTO secrets VALUES (?, ?)",
                    (name, secrets.token_bytes(32)))
        return bytes(self._execute("SELECT value FROM secrets WHERE name = ?", (name,))[0][0])

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        now = self._clock()
        if now - self._purged_at >= PURGE_INTERVAL_S:
            self._purged_at = now
            self._execute("DELETE FROM one_time WHERE expires_at <= ?", (now,))
            self._execute("DELETE FROM failures WHERE expires_at <= ?", (now,))
        return self._execute(sql, parameters)

    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        # fetchall() steps the statement to its end, which commits it (autocommit mode).
        with self._lock:
            return self._connected().execute(sql, parameters).fetchall()

    def _connected(self) -> sqlite3.Connection:
        """This process's connection (a forked child opens its own)."""
        if self._connection is None or self._pid != os.getpid():
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
            connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_S,
                                         isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._connection, self._pid = connection, os.getpid()
        return self._connection


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
