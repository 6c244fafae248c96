"""Kill the worker (SIGKILL) in the middle of a burst of due reminders, start a new one: every
reminder reaches the SMTP server, each under exactly one Message-ID, and each is recorded
once as a completed Communication."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.notify.test_celery_worker import count
from tests.support.dispatch_processes import (
    counting_smtp_sink,
    private_redis,
    process_env,
    seed_due_reminders,
    start,
    stop,
    wait_until,
)

DUE = 300


def test_killing_the_worker_mid_burst_loses_nothing_and_sends_nothing_twice(
        tmp_path: Path) -> None:
    database = tmp_path / "fhir.db"
    asyncio.run(seed_due_reminders(f"sqlite:///{database}", DUE, now=datetime.now(UTC)))
    with private_redis() as broker, counting_smtp_sink(delay_s=0.05) as (sink, port):
        env = process_env(tmp_path, broker_url=broker, smtp_port=port,
                          dispatch_interval_s="0.5", dispatch_lease_s="5")
        beat = start("beat", env, tmp_path / "beat.log")
        worker = start("worker", env, tmp_path / "worker.log")
        try:
            wait_until(lambda: len(sink.received) >= DUE // 5, timeout_s=60,
                       what="the burst to start")
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            sent_before_kill = len(sink.distinct())
            worker = start("worker", env, tmp_path / "worker-restarted.log")
            wait_until(lambda: count(database, "CommunicationRequest", "completed") == DUE,
                       timeout_s=120, what=f"every reminder completed (see {tmp_path})")
        finally:
            stop(worker)
            stop(beat)

    assert sent_before_kill < DUE, "the kill came after the burst; it proved nothing"
    assert len(sink.distinct()) == DUE
    assert "" not in sink.distinct()
    assert count(database, "Communication", "completed") == DUE
