"""What the embedded server must remember between requests: revoked tokens, seen client
assertions, and clients that keep failing to authenticate.

Revoked `jti`s live in memory and in `data_dir/auth/revoked.json` (0600) until their token
expires, so a restart does not bring a revoked token back; the revoking worker refuses the
token at once, other worker processes pick the file up within `RELOAD_INTERVAL_S`. Writers
take an exclusive lock on a sibling lock file, so two workers revoking at once both land.
Seen assertion `jti`s and failure counts are in the shared state file (`state.py`), so every
worker process sees the same ones.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fhir_server.auth.server.json_records import write_private_json
from fhir_server.auth.server.state import AuthState

RELOAD_INTERVAL_S = 1.0


class RevocationList:
    """Revoked access-token `jti`s until their `exp` (the `TokenValidator.is_revoked` hook)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._revoked: dict[str, float] = {}
        self._mtime: float | None = None
        self._checked_at = float("-inf")
        self._reload()

    @classmethod
    def in_data_dir(cls, data_dir: Path, **kwargs: Callable[[], float]) -> RevocationList:
        return cls(data_dir / "auth" / "revoked.json", **kwargs)

    def revoke(self, jti: str, expires_at: float) -> None:
        """Remember `jti` as revoked until `expires_at`, on disk before this returns."""
        with self._lock, self._file_lock():
            self._reload()
            self._revoked[jti] = expires_at
            self._prune()
            self._write()

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise read-modify-write of the file across worker processes."""
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path.with_name(f".{self._path.name}.lock"), os.O_RDWR | os.O_CREAT,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def is_revoked(self, jti: str, *, fresh: bool = False) -> bool:
        """True when `jti` is revoked; `fresh` re-reads the file now (before a single use)."""
        now = time.monotonic()
        if fresh or now - self._checked_at >= RELOAD_INTERVAL_S:
            with self._lock:
                self._checked_at = now
                self._reload()
        return jti in self._revoked

    def _prune(self) -> None:
        now = self._clock()
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}

    def _reload(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            stored = json.loads(self._path.read_text("utf-8"))
            self._revoked.update({str(k): float(v) for k, v in stored.items()})
            self._mtime = mtime

    def _write(self) -> None:
        write_private_json(self._path, self._revoked)
        self._mtime = self._path.stat().st_mtime


class SeenAssertions:
    """Client-assertion `jti`s already used, each kept in the shared state until it expires."""

    def __init__(self, state: AuthState) -> None:
        self._state = state

    def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time `key` is presented before it expires, in any worker process."""
        return self._state.first_use("assertion-jti", key, expires_at)


class FailureThrottle:
    """Exponential back-off for a key after `free_failures` failures within `window_s`.

    After the fifth failure in a minute a key must wait 1 s, then 2, 4, ... up to
    `max_delay_s` before its next attempt is even checked; a success clears the count. Counts
    live in the shared state under `name`, so every worker process sees the same ones.
    """

    def __init__(self, state: AuthState, name: str, *, free_failures: int = 5,
                 window_s: float = 60.0, max_delay_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._name = name
        self._free = free_failures
        self._window = window_s
        self._max_delay = max_delay_s
        self._clock = clock

    def retry_after(self, key: str) -> float:
        """Seconds `key` must still wait (0: it may try now)."""
        count, last_at = self._state.failures(f"{self._name}:{key}")
        if count < self._free:
            return 0.0
        delay = min(2.0 ** (count - self._free), self._max_delay)
        return max(0.0, last_at + delay - self._clock())

    def failed(self, key: str) -> None:
        """One more failure; the window runs from the latest, so a slow stream keeps counting."""
        self._state.count_failure(f"{self._name}:{key}", self._window)

    def succeeded(self, key: str) -> None:
        self._state.clear_failures(f"{self._name}:{key}")
