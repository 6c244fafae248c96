"""The state file shared by the worker processes: one taker per code, one first use per `jti`,
whether the racers are threads of one process or separate processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fhir_server.auth.server.state import PURGE_INTERVAL_S, AuthState

KEYS = [f"code-{n}" for n in range(200)]
FAR = 4_102_444_800.0  # 2100-01-01


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _take_all(path: str) -> list[str]:
    """One racing process: the keys it managed to take."""
    state = AuthState(Path(path))
    return [key for key in KEYS if state.take("code", key) is not None]


def _first_uses(path: str) -> list[str]:
    state = AuthState(Path(path))
    return [key for key in KEYS if state.first_use("jti", key, FAR)]


def _race(racer: Callable[[str], list[str]], path: Path, processes: int = 4) -> list[str]:
    """The keys won, once per win, when `processes` separate processes race over all keys."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(racer, [str(path)] * processes)
    return [key for won in results for key in won]


def test_each_value_is_taken_by_exactly_one_of_many_threads(tmp_path: Path) -> None:
    state = AuthState.in_data_dir(tmp_path)
    for key in KEYS:
        state.put("code", key, {"key": key}, FAR)
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda key: state.take("code", key), KEYS * 8))
    assert sorted(value["key"] for value in taken if value is not None) == sorted(KEYS)


def test_each_value_is_taken_by_exactly_one_of_many_processes(tmp_path: Path) -> None:
    state = AuthState.in_data_dir(tmp_path)
    for key in KEYS:
        state.put("code", key, {"key": key}, FAR)
    assert sorted(_race(_take_all, tmp_path / "auth" / "state.db")) == sorted(KEYS)


def test_each_key_is_used_first_by_exactly_one_of_many_processes(tmp_path: Path) -> None:
    AuthState.in_data_dir(tmp_path)
    assert sorted(_race(_first_uses, tmp_path / "auth" / "state.db")) == sorted(KEYS)


def test_an_expired_value_is_gone_and_an_expired_key_may_be_used_again(tmp_path: Path) -> None:
    clock = Clock()
    state = AuthState.in_data_dir(tmp_path, clock=clock)
    state.put("code", "c", {"v": 1}, clock.now + 60)
    assert state.first_use("jti", "j", clock.now + 60)
    assert not state.first_use("jti", "j", clock.now + 60)
    assert state.first_use("code", "j", clock.now + 60)  # kinds are separate
    assert state.get("code", "c") == {"v": 1}
    clock.now += 60
    assert state.get("code", "c") is None and state.take("code", "c") is None
    assert state.first_use("jti", "j", clock.now + 60)


def test_expired_rows_are_purged_by_a_later_write(tmp_path: Path) -> None:
    clock = Clock()
    state = AuthState.in_data_dir(tmp_path, clock=clock)
    state.put("code", "old", {}, clock.now + 1)
    state.count_failure("old", window_s=1)
    clock.now += PURGE_INTERVAL_S
    state.put("code", "new", {}, clock.now + 60)
    with sqlite3.connect(tmp_path / "auth" / "state.db") as db:
        assert db.execute("SELECT count(*) FROM one_time").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM failures").fetchone() == (0,)


def test_failures_count_within_the_window_of_the_last_one(tmp_path: Path) -> None:
    clock = Clock()
    state = AuthState.in_data_dir(tmp_path, clock=clock)
    other = AuthState.in_data_dir(tmp_path, clock=clock)  # another process's view
    state.count_failure("user:x", window_s=60)
    clock.now += 50
    other.count_failure("user:x", window_s=60)
    assert state.failures("user:x") == (2, clock.now)
    clock.now += 61
    assert other.failures("user:x") == (0, 0.0)
    state.count_failure("user:x", window_s=60)
    assert other.failures("user:x") == (1, clock.now)
    other.clear_failures("user:x")
    assert state.failures("user:x") == (0, 0.0)


def test_a_secret_is_made_once_and_the_file_is_private(tmp_path: Path) -> None:
    first = AuthState.in_data_dir(tmp_path).secret("csrf")
    assert len(first) == 32 and AuthState.in_data_dir(tmp_path).secret("csrf") == first
    assert AuthState.in_data_dir(tmp_path).secret("other") != first
    assert stat.S_IMODE((tmp_path / "auth" / "state.db").stat().st_mode) == 0o600


def test_the_file_holds_digests_of_keys_not_usable_codes(tmp_path: Path) -> None:
    state = AuthState.in_data_dir(tmp_path)
    state.put("code", "a-live-authorization-code", {"client_id": "app"}, FAR)
    stored = b"".join(path.read_bytes() for path in (tmp_path / "auth").iterdir())
    assert b"a-live-authorization-code" not in stored and b'"client_id"' in stored
