"""What the embedded server must remember between requests: revoked tokens, seen client
assertions, and clients that keep failing to authenticate.

Revoked `jti`s live in memory and in `data_dir/auth/revoked.json` (0600) until their token
expires, so a restart does not bring a revoked token back; another worker process picks the
file up within `RELOAD_INTERVAL_S`. Seen assertion `jti`s and failure counts are per process.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

RELOAD_INTERVAL_S = 1.0
MAX_REMEMBERED = 100_000


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
        with self._lock:
            self._reload()
            self._revoked[jti] = expires_at
            self._prune()
            self._write()

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
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._revoked, handle)
        os.replace(temporary, self._path)
        self._mtime = self._path.stat().st_mtime


class SeenAssertions:
    """Client-assertion `jti`s already used, each kept until its assertion expires."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time `key` is presented before it expires; False on a replay."""
        with self._lock:
            now = self._clock()
            if len(self._seen) > MAX_REMEMBERED // 10:
                self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = expires_at
            return True


class FailureThrottle:
    """Exponential back-off for a client id after `free_failures` failures within `window_s`.

    After the fifth failure in a minute a client must wait 1 s, then 2, 4, ... up to
    `max_delay_s` before its next attempt is even checked; a success clears the count.
    """

    def __init__(self, *, free_failures: int = 5, window_s: float = 60.0,
                 max_delay_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._free = free_failures
        self._window = window_s
        self._max_delay = max_delay_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, client_id: str) -> float:
        """Seconds `client_id` must still wait (0: it may try now)."""
        with self._lock:
            failures = self._recent(client_id)
            if len(failures) < self._free:
                return 0.0
            delay = min(2.0 ** (len(failures) - self._free), self._max_delay)
            return max(0.0, failures[-1] + delay - self._clock())

    def failed(self, client_id: str) -> None:
        with self._lock:
            self._failures[client_id] = [*self._recent(client_id), self._clock()]
            self._failures.move_to_end(client_id)
            if len(self._failures) > MAX_REMEMBERED:
                self._failures.popitem(last=False)

    def succeeded(self, client_id: str) -> None:
        with self._lock:
            self._failures.pop(client_id, None)

    def _recent(self, client_id: str) -> list[float]:
        # Within the window of the latest failure, so a slow stream of failures keeps backing off.
        failures = self._failures.get(client_id, [])
        if failures and self._clock() - failures[-1] > self._window:
            return []
        return failures
