"""Benchmark: CPU instructions per Appointment read with security (token validation +
authorization + audit) off and on, counted by valgrind's callgrind.

Usage (from the repository root, inside the venv):
    python scripts/bench/read_instructions.py [--requests 2000] [--search]

Throughput on a shared VM moves by ±20 % from one ten-second round to the next, more than the
few percent this benchmark is about. Instruction counts do not: the same requests cost the
same count whatever else the machine is doing. Each server (`unsecured_app.py` with guard
and audit off, and the real one) runs as a uvicorn process under `valgrind
--tool=callgrind`, with every thread counted (the event loop and the audit log's writer
thread). After a warm-up, the counters are zeroed (`callgrind_control
-z`), `--requests` reads are sent one after another over one keep-alive connection, the server
is given a few seconds to write its audit backlog, and the counters are dumped (`-d`); the
secured count therefore includes writing every audit record, not only queueing it. What the
server's timers cost meanwhile (the event loop's ticks, the audit writer's wake-ups) is
measured while it idles, in the same run, and subtracted pro rata. Valgrind slows the
server ~50x, so at the writer's default 50 ms it would write batches of a few records, where
at full speed (thousands of reads/s) they hold hundreds; the benchmark sets
`FHIR_SCHEDULER_AUDIT_FLUSH_INTERVAL_S` 50x longer so that batches, and what each costs
per record, are as at full speed. Start-up, which is not deterministic (keys, threads), is never
counted.

What callgrind does not count: time in the kernel (socket and WAL file writes) and waiting
(cache misses, I/O); `read_search.py` measures wall-clock throughput in the same spirit.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fhir_server.audit.writer import FLUSH_INTERVAL_S  # noqa: E402
from fhir_server.auth.issuing import issue_access_token  # noqa: E402
from fhir_server.auth.keys import load_or_create_keys  # noqa: E402
from scripts.bench.read_search import PATIENTS, load, uvicorn_server  # noqa: E402

WARM_UP = 300
VALGRIND_SLOWDOWN = 50  # about how much slower a Python process runs under callgrind
SETTLE_S = 8.0  # for the audit writer to write what the requests left (its last batch)


@contextmanager
def server_under_callgrind(target: str, env: dict[str, str],
                           out_dir: Path) -> Iterator[tuple[int, int]]:
    """`target` (module:factory) served by uvicorn under callgrind; yields (port, pid)."""
    callgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.%p",
                 "--dump-instr=no"]
    with uvicorn_server(target, {**env, "PYTHONHASHSEED": "0"}, wrapper=callgrind,
                        start_timeout_s=600, stop_timeout_s=300, quiet=True) as (url, pid):
        port = urlsplit(url).port
        assert port is not None
        yield port, pid


def get_many(port: int, path: str, headers: dict[str, str], count: int) -> None:
    """`count` GETs of `path`, one after another on one keep-alive connection; all 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(count):
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
    connection.close()


def callgrind_command(pid: int, flag: str) -> None:
    """Send `-z` (zero the counters) or `-d` (dump them) to the callgrind process `pid`."""
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True,
                   timeout=120)


def dumped(out_dir: Path, pid: int) -> int:
    """The instructions total of the dump `callgrind_control -d` just wrote (then removed)."""
    for _ in range(100):
        dumps = sorted(out_dir.glob(f"callgrind.{pid}.*"))
        if dumps:
            text = dumps[-1].read_text()
            match = re.search(r"^(?:totals|summary): (\d+)", text, re.MULTILINE)
            if match:
                for dump in dumps:
                    dump.unlink()
                return int(match.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump for {pid}")


def counted(pid: int, out_dir: Path, work: Callable[[], None]) -> tuple[int, float]:
    """Instructions the server executes while `work` runs and for `SETTLE_S` after it (its
    audit backlog being written), and the seconds that took."""
    callgrind_command(pid, "-z")
    started = time.monotonic()
    work()
    time.sleep(SETTLE_S)
    callgrind_command(pid, "-d")
    return dumped(out_dir, pid), time.monotonic() - started


def per_request(target: str, env: dict[str, str], path: str, headers: dict[str, str],
                requests: int, out_dir: Path) -> float:
    """Instructions per request on a warmed-up server, less what its timers cost meanwhile
    (measured as it idles, in the same run)."""
    with server_under_callgrind(target, env, out_dir) as (port, pid):
        get_many(port, path, headers, WARM_UP)
        time.sleep(SETTLE_S)
        idle, idle_s = counted(pid, out_dir, lambda: None)
        busy, busy_s = counted(pid, out_dir, lambda: get_many(port, path, headers, requests))
    return (busy - idle * busy_s / idle_s) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--search", action="store_true",
                        help="also count the Appointment?patient=&date= search")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt install valgrind")
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        store_url = f"sqlite:///{data_dir / 'bench.db'}"
        asyncio.run(load(store_url, args.appointments, None))
        env = {"FHIR_SCHEDULER_STORE_URL": store_url, "FHIR_SCHEDULER_DATA_DIR": str(data_dir),
               "FHIR_SCHEDULER_BASE_URL": "http://127.0.0.1/fhir",
               "FHIR_SCHEDULER_LOG_LEVEL": "WARNING",
               # Audit batches as large as at full speed: 50 ms there is ~2.5 s here.
               "FHIR_SCHEDULER_AUDIT_FLUSH_INTERVAL_S": str(FLUSH_INTERVAL_S * VALGRIND_SLOWDOWN)}
        token = issue_access_token(
            load_or_create_keys(data_dir), issuer="http://127.0.0.1/auth",
            audience="http://127.0.0.1/fhir", subject="bench", scopes="user/*.cruds",
            lifetime=timedelta(hours=1), now=datetime.now(UTC), role="administrator",
            fhir_user="Practitioner/d1", client_id="bench")
        headers = {"Authorization": f"Bearer {token}"}  # sent to both, so requests are alike
        target = f"a{7 % args.appointments}"
        cases = [("read", f"/fhir/Appointment/{target}")]
        if args.search:
            patient = f"p{7 % PATIENTS}"
            cases.append(("search", f"/fhir/Appointment?patient=Patient/{patient}"
                                    "&date=ge2026-01-01&date=lt2026-05-01"))
        print(f"callgrind instructions per request ({args.requests} sequential requests after "
              f"{WARM_UP} to warm up; SQLite store of {args.appointments} appointments)")
        print(f"{'case':8} {'off':>12} {'on':>12} {'overhead':>9}")
        for name, path in cases:
            off = per_request("scripts.bench.unsecured_app:create_unsecured_app", env, path,
                          headers, args.requests, data_dir)
            on = per_request("fhir_server.app:create_app", env, path, headers, args.requests,
                         data_dir)
            print(f"{name:8} {off:12,.0f} {on:12,.0f} {on / off - 1:9.1%}")


if __name__ == "__main__":
    main()
