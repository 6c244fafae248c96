"""Benchmark: the cost of token validation + authorization + audit on an Appointment read.

Usage (from the repository root, inside the venv):
    python scripts/bench/security_overhead.py [--requests 20000] [--rounds 5]

One app, one SQLite store with a few thousand appointments, routers over it: the real one
(guard + audit observer, as served), the same routes with neither (`fhir_router(
secured=False)`, which only the benchmarks build), and with the guard alone. Requests go
straight into the ASGI app (no sockets, no HTTP client), alternating rounds so all see the
same machine state. The secured time includes draining the audit writer, so the background
writes are paid for; the request path without writes is measured too, to show what costs
what.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fhir_server.app import create_app, fhir_router  # noqa: E402
from fhir_server.auth.issuing import issue_access_token  # noqa: E402
from fhir_server.auth.keys import load_or_create_keys  # noqa: E402
from fhir_server.fhir.search.model import StoreQuery  # noqa: E402
from fhir_server.settings import Settings  # noqa: E402
from scripts.bench.read_search import load  # noqa: E402

BASE = "http://127.0.0.1/fhir"


async def call(app: object, path: str, headers: list[tuple[bytes, bytes]],
               owner: object) -> int:
    """One GET straight into the router `app` of the FastAPI app `owner`; the status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "app": owner}
    status = 0

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]

    await app(scope, receive, send)  # type: ignore[operator]
    return status


async def timed(app: object, path: str, headers: list[tuple[bytes, bytes]], count: int,
                drain: object | None, owner: object) -> float:
    """Seconds per request over `count` reads (plus draining the audit queue, if any)."""
    started = time.perf_counter()
    for _ in range(count):
        assert await call(app, path, headers, owner) == 200
    if drain is not None:
        await drain()  # type: ignore[operator]
    return (time.perf_counter() - started) / count


async def run(requests: int, rounds: int, appointments: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        store_url = f"sqlite:///{data_dir / 'bench.db'}"
        await load(store_url, appointments, None)
        settings = Settings(store_url=store_url, data_dir=data_dir, base_url=BASE,
                            log_level="WARNING")
        load_or_create_keys(data_dir)
        app = create_app(settings)
        token = issue_access_token(
            load_or_create_keys(data_dir), issuer=settings.issuer, audience=BASE,
            subject="bench", scopes="user/*.cruds", lifetime=timedelta(hours=1),
            now=datetime.now(UTC), role="administrator", fhir_user="Practitioner/d1",
            client_id="bench")
        headers = [(b"authorization", f"Bearer {token}".encode()), (b"host", b"127.0.0.1")]
        async with app.router.lifespan_context(app):
            secured = app.state.fhir_router
            bare = fhir_router(secured=False)
            guard_only = fhir_router(secured=False)
            guard_only._guard = secured._guard  # isolates the guard's share  # noqa: SLF001
            writer = app.state.audit_writer
            submit = writer.submit
            path = "/Appointment/a7"

            async def unwritten() -> float:
                writer.submit = lambda record: None  # the record is built, never written
                try:
                    return await timed(secured, path, headers, requests, None, app)
                finally:
                    writer.submit = submit

            variants = {
                "guard+audit OFF": lambda: timed(bare, path, headers, requests, None, app),
                "guard only": lambda: timed(guard_only, path, headers, requests, None, app),
                "guard + audit record, unwritten": unwritten,
                "guard+audit ON (writes drained)": lambda: timed(
                    secured, path, headers, requests, writer.drain, app),
            }
            for variant in variants.values():  # warm caches
                await variant()
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, variant in variants.items():
                    times[name].append(await variant())
            audited = await count_audit_events(app)
        off = statistics.median(times["guard+audit OFF"])
        print(f"Appointment read, {requests} requests x {rounds} rounds, in-process ASGI (medians)")
        for name, measured in times.items():
            median = statistics.median(measured)
            print(f"  {name:32} {median * 1e6:6.1f} µs  {median / off - 1:+6.1%}")
        print(f"  (audit records written: {audited})")


async def count_audit_events(app: object) -> int:
    """How many records the audit log holds."""
    store = app.state.fhir.store  # type: ignore[attr-defined]
    page = await store.audit_log.search(StoreQuery("AuditEvent", limit=0))
    return int(page.total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--appointments", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.rounds, args.appointments))


if __name__ == "__main__":
    main()
