"""Benchmark: booking throughput through the service against the raw store operations it needs.

Usage (from the repository root, inside the venv):
    python scripts/bench/booking.py [--bookings 1000] [--store sqlite]
    MONGODB_URI=mongodb://host:27017 python scripts/bench/booking.py --store mongo
    python scripts/bench/booking.py --store mongo --bookings 200   # jongodb test server

In one run, on two fresh stores of the same kind with N free slots each, it books N
appointments of N different slots through `booking.book` (in-process, one after another) and,
as the baseline, performs per booking only the store calls a one-slot booking cannot avoid:
read the slot, conditionally write it busy-tentative, insert the Appointment, conditionally
write the slot busy. It prints bookings/s for both and the ratio (target: service ≤ 3x slower).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fhir_server.fhir.instants import format_instant  # noqa: E402
from fhir_server.fhir.search.model import TokenEntry  # noqa: E402
from fhir_server.services import booking  # noqa: E402
from fhir_server.services.context import FhirContext  # noqa: E402
from fhir_server.services.versions import next_version  # noqa: E402
from fhir_server.services.wiring import make_context  # noqa: E402
from fhir_server.settings import REPO_ROOT  # noqa: E402
from fhir_server.store.factory import open_store_for_url  # noqa: E402
from fhir_server.store.protocol import VersionWrite  # noqa: E402
from scripts.bench.read_search import store_url_for  # noqa: E402

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DAY0 = datetime(2030, 1, 7, 8, tzinfo=UTC)
PRACTITIONERS = 20


def slot_time(i: int) -> tuple[datetime, datetime]:
    """Slot i: 30 minutes, 16 a day per practitioner, so no two bookings of one actor clash."""
    practitioner_slot = i // PRACTITIONERS
    start = DAY0 + timedelta(days=practitioner_slot // 16, minutes=30 * (practitioner_slot % 16))
    return start, start + timedelta(minutes=30)


def slot(i: int) -> dict[str, Any]:
    start, end = slot_time(i)
    return {"resourceType": "Slot", "id": f"s{i}", "status": "free",
            "schedule": {"reference": f"Schedule/sch{i % PRACTITIONERS}"},
            "start": format_instant(start), "end": format_instant(end)}


def appointment(i: int) -> dict[str, Any]:
    start, end = slot_time(i)
    return {"resourceType": "Appointment", "status": "booked",
            "start": format_instant(start), "end": format_instant(end),
            "slot": [{"reference": f"Slot/s{i}"}],
            "participant": [
                {"actor": {"reference": f"Patient/p{i}"}, "status": "accepted"},
                {"actor": {"reference": f"Practitioner/d{i % PRACTITIONERS}"},
                 "status": "accepted"}]}


async def open_context(url: str) -> FhirContext:
    store = open_store_for_url(url)
    await store.open()
    return make_context(store, capability_dir=REPO_ROOT / "capability",
                        base_url="http://127.0.0.1/fhir")


async def load(ctx: FhirContext, count: int) -> None:
    """The schedules and N free slots, in batches."""
    writes = [next_version(ctx, {"resourceType": "Schedule", "id": f"sch{d}",
                                 "actor": [{"reference": f"Practitioner/d{d}"}]},
                           resource_type="Schedule", id=f"sch{d}", current=None, now=NOW,
                           method="POST") for d in range(PRACTITIONERS)]
    writes += [next_version(ctx, slot(i), resource_type="Slot", id=f"s{i}", current=None,
                            now=NOW, method="POST") for i in range(count)]
    for start in range(0, len(writes), 200):
        await ctx.store.commit(writes[start:start + 200])


async def through_service(ctx: FhirContext, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        await booking.book(ctx, appointment(i), now=NOW)
    return count / (time.perf_counter() - started)


def _slot_write(current: Any, status: str, when: datetime) -> VersionWrite:
    body = orjson.loads(current.body)
    previous = body["status"]
    body["status"] = status
    return VersionWrite(resource_type="Slot", id=current.id, version_id=current.version_id + 1,
                        last_updated=when, method="PUT", body=orjson.dumps(body),
                        index=(TokenEntry("status", None, status),),
                        expected_version=current.version_id, match={"status": previous})


async def raw_store(ctx: FhirContext, count: int) -> float:
    """Per booking: read, conditional claim, appointment insert, conditional finalize."""
    inserts = [next_version(ctx, appointment(i), resource_type="Appointment", id=f"a{i}",
                            current=None, now=NOW, method="POST") for i in range(count)]
    store = ctx.store
    started = time.perf_counter()
    for i in range(count):
        current = await store.read("Slot", f"s{i}")
        assert current is not None
        [claimed] = await store.commit([_slot_write(current, "busy-tentative", NOW)])
        await store.commit([inserts[i]])
        await store.commit([_slot_write(claimed, "busy", NOW)])
    return count / (time.perf_counter() - started)


async def run(urls: tuple[str, str], count: int) -> tuple[float, float]:
    service_ctx, raw_ctx = await open_context(urls[0]), await open_context(urls[1])
    try:
        await load(service_ctx, count)
        await load(raw_ctx, count)
        raw = await raw_store(raw_ctx, count)
        service = await through_service(service_ctx, count)
        return service, raw
    finally:
        await service_ctx.store.close()
        await raw_ctx.store.close()


def _second_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url.removesuffix(".db") + "-raw.db"
    head, _, query = url.partition("?")
    return f"{head}_raw" + (f"?{query}" if query else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--store", choices=["sqlite", "mongo"], default="sqlite")
    args = parser.parse_args()
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url, label = stack.enter_context(store_url_for(args.store, data_dir))
        service, raw = asyncio.run(run((url, _second_url(url)), args.bookings))
        print(f"store: {label}; {args.bookings} bookings of distinct free slots, sequential")
        print(f"{'raw store bookings/s':>20} {'service bookings/s':>19} {'ratio':>6}")
        print(f"{raw:20.0f} {service:19.0f} {raw / service:6.2f}")


if __name__ == "__main__":
    main()
