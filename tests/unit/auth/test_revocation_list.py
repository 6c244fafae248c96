"""Revoked token ids survive restarts and concurrent revocations by several worker processes."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from fhir_server.auth.server.revocations import RevocationList

PROCESSES, EACH = 4, 25


def revoke_many(data_dir: str, worker: int) -> None:
    """One worker process revoking its own tokens, each through a fresh read of the file."""
    revocations = RevocationList.in_data_dir(Path(data_dir))
    for n in range(EACH):
        revocations.revoke(f"jti-{worker}-{n}", time.time() + 3600)


def test_revocations_from_concurrent_processes_all_land(tmp_path: Path) -> None:
    with ProcessPoolExecutor(PROCESSES, mp_context=get_context("spawn")) as pool:
        list(pool.map(revoke_many, [str(tmp_path)] * PROCESSES, range(PROCESSES)))

    restarted = RevocationList.in_data_dir(tmp_path)

    missing = [f"jti-{w}-{n}" for w in range(PROCESSES) for n in range(EACH)
               if not restarted.is_revoked(f"jti-{w}-{n}")]
    assert missing == []
    assert not restarted.is_revoked("jti-never-revoked")


def test_expired_revocations_are_forgotten_on_the_next_write(tmp_path: Path) -> None:
    revocations = RevocationList.in_data_dir(tmp_path)
    revocations.revoke("old", time.time() - 1)
    revocations.revoke("new", time.time() + 60)

    restarted = RevocationList.in_data_dir(tmp_path)

    assert restarted.is_revoked("new") and not restarted.is_revoked("old")
