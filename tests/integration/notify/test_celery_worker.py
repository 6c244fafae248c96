"""A real `fhir-scheduler worker` and `beat` over a real broker (a private Redis, and the
default filesystem transport) deliver every due reminder once to a real SMTP server and
record each as a Communication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fhir_server.fhir.search.model import Clause, StoreQuery, TokenMatch
from fhir_server.store.sqlite import SqliteStore
from tests.support.dispatch_processes import (
    counting_smtp_sink,
    private_redis,
    process_env,
    seed_due_reminders,
    start,
    stop,
    wait_until,
)

DUE = 30


@pytest.fixture(params=["redis", "filesystem"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "filesystem":
        yield ""
        return
    with private_redis() as url:
        yield url


def count(path: Path, resource_type: str, status: str) -> int:
    async def counted() -> int:
        store = SqliteStore(str(path))
        await store.open()
        try:
            page = await store.search(StoreQuery(resource_type, (
                Clause((TokenMatch("status", None, status),)),), limit=0))
            return page.total or 0
        finally:
            await store.close()
    return asyncio.run(counted())


def test_a_worker_sends_every_due_reminder_once(tmp_path: Path, broker_url: str) -> None:
    ids = asyncio.run(seed_due_reminders(f"sqlite:///{tmp_path / 'fhir.db'}", DUE,
                                         now=datetime.now(UTC)))
    with counting_smtp_sink() as (sink, port):
        env = process_env(tmp_path, broker_url=broker_url, smtp_port=port,
                          dispatch_interval_s="0.3", dispatch_lease_s="10")
        processes = [start("worker", env, tmp_path / "worker.log"),
                     start("beat", env, tmp_path / "beat.log")]
        try:
            wait_until(lambda: count(tmp_path / "fhir.db", "CommunicationRequest",
                                     "completed") == DUE,
                       timeout_s=90, what=f"{DUE} completed requests "
                                          f"(see {tmp_path}/worker.log)")
        finally:
            for process in processes:
                stop(process)

    assert len(ids) == DUE
    assert len(sink.received) == len(sink.distinct()) == DUE
    assert count(tmp_path / "fhir.db", "Communication", "completed") == DUE
    assert count(tmp_path / "fhir.db", "CommunicationRequest", "active") == 0
