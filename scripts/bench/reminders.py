"""Reminder dispatch benchmark: N due reminders sent to a local SMTP sink by real workers.

Seeds N booked appointments, each with a reminder due at one instant D (after seeding ends),
in a SQLite store; starts `fhir-scheduler beat` and `fhir-scheduler worker` processes over a
private Redis; the sink (aiosmtpd) records each Message-ID and arrival time. Prints throughput
(messages per second from D to the last arrival), due-to-sent lag p50/p99 (target p99 < 60 s)
and duplicates (arrivals minus distinct Message-IDs; must be 0 without crashes).

    .venv/bin/python scripts/bench/reminders.py [--count 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.dispatch_processes import (  # noqa: E402
    counting_smtp_sink,
    private_redis,
    process_env,
    seed_due_reminders,
    start,
    stop,
    wait_until,
)

SEED_RATE_GUESS = 800  # reminders seeded per second, to place D just after seeding ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reminders-") as folder:
        run(Path(folder), count=args.count, workers=args.workers, timeout_s=args.timeout)


def run(data_dir: Path, *, count: int, workers: int, timeout_s: float) -> None:
    print("load average at the start: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    due = datetime.now(UTC) + timedelta(seconds=10 + count / SEED_RATE_GUESS)
    began = time.monotonic()
    asyncio.run(seed_due_reminders(f"sqlite:///{data_dir / 'fhir.db'}", count, now=due))
    print(f"seeded {count} reminders in {time.monotonic() - began:.1f} s; "
          f"due in {(due - datetime.now(UTC)).total_seconds():.1f} s")
    with private_redis() as broker, counting_smtp_sink() as (sink, port):
        env = process_env(data_dir, broker_url=broker, smtp_port=port,
                          dispatch_interval_s="1", dispatch_lease_s="300")
        processes = [start("beat", env, data_dir / "beat.log")]
        processes += [start("worker", env, data_dir / f"worker-{n}.log")
                      for n in range(workers)]
        try:
            wait_until(lambda: len(sink.distinct()) >= count, timeout_s=timeout_s,
                       what=f"{count} messages", interval_s=0.5)
            time.sleep(3)  # late duplicates would arrive now
        finally:
            for process in processes:
                stop(process)
    report(sink.received, due=due.timestamp(), count=count, workers=workers)
    print("load average at the end: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


def report(received: list[tuple[str, float]], *, due: float, count: int, workers: int) -> None:
    lags = sorted(arrival - due for _, arrival in received)
    distinct = len({message_id for message_id, _ in received})
    elapsed = max(arrival for _, arrival in received) - due
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    print(f"reminders: {count}, worker processes: {workers}, broker: Redis, store: SQLite")
    print(f"throughput: {count / elapsed:.0f} messages/s ({elapsed:.1f} s from due to last)")
    print(f"lag due->sent: p50 {statistics.median(lags):.1f} s, p99 {p99:.1f} s "
          f"(target p99 < 60 s: {'met' if p99 < 60 else 'MISSED'}); first {lags[0]:.1f} s")
    print("sent per 5 s after due: " + " ".join(
        str(sum(1 for lag in lags if start <= lag < start + 5))
        for start in range(0, int(lags[-1]) + 5, 5)))
    print(f"duplicates: {len(received) - distinct} (distinct Message-IDs {distinct})")


if __name__ == "__main__":
    main()
