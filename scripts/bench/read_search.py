"""Benchmark: Appointment read and `Appointment?patient=&date=` search against a bare baseline,
and the cost of security (token validation + authorization + audit) on both.

Usage (from the repository root, inside the venv):
    python scripts/bench/read_search.py [--appointments 10000] [--duration 10] [--rounds 3]
                                        [--no-pin]
    MONGODB_URI=mongodb://host:27017 python scripts/bench/read_search.py --store mongo
    python scripts/bench/read_search.py --store mongo          # jongodb test server (not MongoDB)

It loads N appointments into a fresh store and starts, on that store, in separate uvicorn
processes: the real server, the same server with guard and audit switched off
(`unsecured_app.py`), and a bare Starlette app. It drives them with `wrk` (an httpx client
when wrk is missing) and prints requests/s: the bare baseline once, then security off and on
alternately for `--rounds` rounds (medians), the ratio to the baseline and the overhead of
security (on vs off). Each round starts once no server uses CPU, so the audit records still
being written after a secured round are paid for by that round, not by the next. The
baseline reads the same stored JSON through the same adapter with no FHIR layer on top; the
secured server writes one audit record per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fhir_server.auth.issuing import issue_access_token  # noqa: E402
from fhir_server.auth.keys import load_or_create_keys  # noqa: E402
from fhir_server.fhir.search.parameters import load_registry  # noqa: E402
from fhir_server.services.context import FhirContext  # noqa: E402
from fhir_server.services.versions import next_version  # noqa: E402
from fhir_server.store.factory import open_store_for_url  # noqa: E402
from tests.support.mongo_server import mongo_database_url, start_test_mongodb  # noqa: E402

# `--pin` (with two CPUs or more): each server runs on CPU 0, all its threads, so the audit
# log's writes in a worker thread are paid for by the server's own core, and wrk on CPU 1;
# neither steals the other's core and rounds stay comparable. Unpinned, SQLite's share of
# the writes (run without the GIL) can use the core wrk leaves idle.
SERVER_CPU: list[str] = []
CLIENT_CPU: list[str] = []


def pin_cpus() -> bool:
    """Pin servers and wrk to separate CPUs from now on; False when this machine cannot."""
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return False
    SERVER_CPU[:] = ["taskset", "-c", "0"]
    CLIENT_CPU[:] = ["taskset", "-c", "1"]
    return True
PATIENTS = 500
PRACTITIONERS = 20
DAY0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


def appointment(i: int) -> dict[str, object]:
    """A booked 30-minute appointment; patient and day spread so each search finds a few."""
    start = DAY0 + timedelta(days=i % 90, minutes=30 * (i % 16))
    return {
        "resourceType": "Appointment", "status": "booked",
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
        "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]}],
        "participant": [
            {"actor": {"reference": f"Patient/p{i % PATIENTS}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/d{i % PRACTITIONERS}"}, "status": "accepted"},
        ],
    }


async def load(store_url: str, count: int, database: str | None) -> None:
    """Write `count` appointments through the real versioning and indexing path."""
    store = open_store_for_url(store_url)
    await store.open()
    ctx = FhirContext(store=store, registry=load_registry(ROOT / "capability"),
                      base_url="http://127.0.0.1/fhir")
    now = datetime.now(UTC)
    batch = []
    for i in range(count):
        batch.append(next_version(ctx, appointment(i), resource_type="Appointment", id=f"a{i}",
                                  current=None, now=now, method="PUT"))
        if len(batch) == 500:
            await store.commit(batch)
            batch = []
    if batch:
        await store.commit(batch)
    await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pids: list[int], *, quiet_s: float = 0.3, limit_s: float = 30.0) -> None:
    """Wait until none of the servers uses CPU (an audit backlog still being written would
    otherwise slow the next round, whichever server it measures)."""
    deadline = time.monotonic() + limit_s
    used = [cpu_seconds(pid) for pid in pids]
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = [cpu_seconds(pid) for pid in pids]
        if all(b - a < 0.02 for a, b in zip(used, now, strict=True)):
            return
        used = now


def load_average() -> str:
    """The 1-minute load average, to print beside the numbers."""
    return Path("/proc/loadavg").read_text().split()[0]


@contextmanager
def uvicorn_server(target: str, env: dict[str, str], *, wrapper: Sequence[str] | None = None,
                   start_timeout_s: float = 30.0, stop_timeout_s: float = 10.0,
                   quiet: bool = False) -> Iterator[tuple[str, int]]:
    """Run `target` (module:factory) in its own uvicorn process, under `wrapper` (default:
    pinned to the servers' CPU); yield its root URL and pid. `quiet` drops its stderr."""
    port = free_port()
    proc = subprocess.Popen(
        [*(SERVER_CPU if wrapper is None else wrapper), sys.executable, "-m", "uvicorn", target,
         "--factory", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.DEVNULL if quiet else None)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{target} did not start")
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(stop_timeout_s)
        except subprocess.TimeoutExpired:  # e.g. still flushing a long audit queue
            proc.kill()
            proc.wait()


def requests_per_second(url: str, duration: int, connections: int,
                        headers: dict[str, str] | None = None) -> float:
    """Sustained requests/s on one URL (wrk when installed, else an httpx client)."""
    headers = headers or {}
    assert httpx.get(url, timeout=10, headers=headers).status_code == 200, url
    if shutil.which("wrk"):
        flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
        out = subprocess.run([*CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                              *flags, url],
                             capture_output=True, text=True, check=True).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if "Non-2xx" in out or match is None:
            raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
        return float(match.group(1))
    return asyncio.run(_httpx_load(url, duration, connections, headers))


async def _httpx_load(url: str, duration: int, connections: int,
                      headers: dict[str, str]) -> float:
    done = 0
    deadline = time.monotonic() + duration
    async with httpx.AsyncClient(headers=headers) as client:
        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                (await client.get(url)).raise_for_status()
                done += 1
        await asyncio.gather(*(worker() for _ in range(connections)))
    return done / duration


@contextmanager
def store_url_for(kind: str, data_dir: Path) -> Iterator[tuple[str, str]]:
    """The store URL to benchmark, and a label saying what it really is."""
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'bench.db'}", "SQLite (embedded default)"
        return
    if os.environ.get("MONGODB_URI"):
        base = os.environ["MONGODB_URI"]
        yield mongo_database_url(base, f"bench_{int(time.time())}"), f"MongoDB at {base}"
        return

    with start_test_mongodb() as uri:
        yield (mongo_database_url(uri, "bench"),
               "jongodb test server (NOT MongoDB: a wire-compatible test double)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "mongo"], default="sqlite")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="servers on CPU 0 and wrk on CPU 1 (default: on)")
    args = parser.parse_args()
    pinned = args.pin and pin_cpus()
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        store_url, label = stack.enter_context(store_url_for(args.store, data_dir))
        started = time.perf_counter()
        asyncio.run(load(store_url, args.appointments, None))
        print(f"store: {label}; loaded {args.appointments} appointments in "
              f"{time.perf_counter() - started:.1f}s")
        env = {"FHIR_SCHEDULER_STORE_URL": store_url, "FHIR_SCHEDULER_DATA_DIR": str(data_dir),
               "FHIR_SCHEDULER_BASE_URL": "http://127.0.0.1/fhir",
               "FHIR_SCHEDULER_LOG_LEVEL": "WARNING"}
        server, server_pid = stack.enter_context(
            uvicorn_server("fhir_server.app:create_app", env))
        unsecured, unsecured_pid = stack.enter_context(
            uvicorn_server("scripts.bench.unsecured_app:create_unsecured_app", env))
        bare, bare_pid = stack.enter_context(
            uvicorn_server("scripts.bench.bare_app:create_bare_app", env))
        pids = [server_pid, unsecured_pid, bare_pid]
        target = f"a{random.Random(7).randrange(args.appointments)}"
        patient = f"p{int(target[1:]) % PATIENTS}"
        search = f"Appointment?patient=Patient/{patient}&date=ge2026-01-01&date=lt2026-05-01"
        cases = [("read", f"{bare}/bare/Appointment/{target}", f"Appointment/{target}"),
                 ("search", f"{bare}/bare/search?patient={patient}", search)]
        token = issue_access_token(
            load_or_create_keys(data_dir), issuer="http://127.0.0.1/auth",
            audience="http://127.0.0.1/fhir", subject="bench", scopes="user/*.cruds",
            lifetime=timedelta(hours=1), now=datetime.now(UTC), role="administrator",
            fhir_user="Practitioner/d1", client_id="bench")  # every agent field is logged
        auth = {"Authorization": f"Bearer {token}"}  # sent to both, so requests are alike
        print(f"wrk -t1 -c{args.connections} -d{args.duration}s; security off/on alternate "
              f"{args.rounds} rounds (medians), each after the servers are idle; "
              f"{'servers on CPU 0, wrk on CPU 1' if pinned else 'unpinned'}; "
              f"load average {load_average()} at the start")
        print(f"{'case':8} {'bare req/s':>11} {'off req/s':>10} {'on req/s':>9} "
              f"{'on/bare':>8} {'overhead':>9}")
        for name, bare_url, path in cases:
            settle(pids)
            baseline = requests_per_second(bare_url, args.duration, args.connections)
            off, on = [], []
            for _ in range(args.rounds):
                settle(pids)
                off.append(requests_per_second(f"{unsecured}/fhir/{path}", args.duration,
                                               args.connections, auth))
                settle(pids)
                on.append(requests_per_second(f"{server}/fhir/{path}", args.duration,
                                              args.connections, auth))
            med_off, med_on = statistics.median(off), statistics.median(on)
            print(f"{name:8} {baseline:11.0f} {med_off:10.0f} {med_on:9.0f} "
                  f"{med_on / baseline:8.2f} {1 - med_on / med_off:9.1%}")
            print(f"{'':8} rounds off {' '.join(f'{r:.0f}' for r in off)}; "
                  f"on {' '.join(f'{r:.0f}' for r in on)}")
        print(f"load average {load_average()} at the end")


if __name__ == "__main__":
    main()
