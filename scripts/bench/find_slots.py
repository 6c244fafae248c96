"""Benchmark: `$find-slots` in-process against the raw store fetch of the same free slots.

Usage (from the repository root, inside the venv):
    python scripts/bench/find_slots.py [--runs 20] [--store sqlite]

Two cases, each loaded into a fresh store through the real versioning and indexing path:
10 practitioners + 1 room over 14 days, and 50 practitioners over 30 days; 30-minute slots
08:00-16:00 every day, ~40% of practitioner slots busy with a booked Appointment. For each it
times `find_slots` (median of N) and, in the same run, the one `store.search` for the free
slots that the service issues (and that plus its busy-appointment search, built by the
service's own `free_slots_query`/`busy_query`), and prints both and their ratio (target <= 3x).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fhir_server.fhir.search.parameters import load_registry  # noqa: E402
from fhir_server.scheduling.find_params import SlotQuery  # noqa: E402
from fhir_server.services.context import FhirContext  # noqa: E402
from fhir_server.services.find_slots import (  # noqa: E402
    busy_query,
    find_slots,
    free_slots_query,
)
from fhir_server.services.versions import next_version  # noqa: E402
from fhir_server.store.factory import open_store_for_url  # noqa: E402

DAY0 = datetime(2030, 3, 4, tzinfo=UTC)
SLOTS_PER_DAY = 16  # 08:00-16:00
BOOKED_SHARE = 0.4


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def case_resources(practitioners: int, rooms: int, days: int) -> list[dict[str, Any]]:
    """Schedules, slots and booked appointments for one case (deterministic)."""
    rng = random.Random(7)
    resources: list[dict[str, Any]] = []
    actors = ([f"Practitioner/d{i}" for i in range(practitioners)]
              + [f"Location/room{i}" for i in range(rooms)])
    for actor in actors:
        sid = "s-" + actor.split("/")[1]
        resources.append({"resourceType": "Schedule", "id": sid, "active": True,
                          "actor": [{"reference": actor}]})
        for day in range(days):
            for k in range(SLOTS_PER_DAY):
                start = DAY0 + timedelta(days=day, hours=8, minutes=30 * k)
                booked = actor.startswith("Practitioner") and rng.random() < BOOKED_SHARE
                slot_id = f"{sid}-{day}-{k}"
                resources.append({
                    "resourceType": "Slot", "id": slot_id,
                    "schedule": {"reference": f"Schedule/{sid}"},
                    "status": "busy" if booked else "free", "start": _instant(start),
                    "end": _instant(start + timedelta(minutes=30))})
                if booked:
                    resources.append({
                        "resourceType": "Appointment", "id": f"a-{slot_id}", "status": "booked",
                        "start": _instant(start), "end": _instant(start + timedelta(minutes=30)),
                        "slot": [{"reference": f"Slot/{slot_id}"}],
                        "participant": [
                            {"actor": {"reference": f"Patient/p{rng.randrange(500)}"},
                             "status": "accepted"},
                            {"actor": {"reference": actor}, "status": "accepted"}]})
    return resources


async def load(ctx: FhirContext, resources: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    batch = []
    for resource in resources:
        batch.append(next_version(ctx, resource, resource_type=resource["resourceType"],
                                  id=resource["id"], current=None, now=now, method="PUT"))
        if len(batch) == 500:
            await ctx.store.commit(batch)
            batch = []
    if batch:
        await ctx.store.commit(batch)


async def medians_ms(actions: list[Any], runs: int) -> list[float]:
    """Median wall time of each action, run interleaved so machine noise hits all alike."""
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for index, action in enumerate(actions):
            started = time.perf_counter()
            await action()
            times[index].append((time.perf_counter() - started) * 1000)
    return [statistics.median(t) for t in times]


async def run_case(name: str, practitioners: int, rooms: int, days: int, runs: int,
                   data_dir: Path) -> None:
    store = open_store_for_url(f"sqlite:///{data_dir / f'{practitioners}-{days}.db'}")
    await store.open()
    ctx = FhirContext(store=store, registry=load_registry(ROOT / "capability"),
                      base_url="http://127.0.0.1/fhir")
    resources = case_resources(practitioners, rooms, days)
    started = time.perf_counter()
    await load(ctx, resources)
    loaded = time.perf_counter() - started
    start, end = DAY0, DAY0 + timedelta(days=days)
    actors = [("Practitioner", tuple(f"Practitioner/d{i}" for i in range(practitioners)))]
    if rooms:
        actors.append(("Location", tuple(f"Location/room{i}" for i in range(rooms))))
    query = SlotQuery(start=start, end=end, actors=tuple(actors), count=10)
    now = DAY0 - timedelta(days=1)
    schedule_ids = [f"s-d{i}" for i in range(practitioners)] + [f"s-room{i}"
                                                                for i in range(rooms)]
    actor_refs = [r for _, refs in actors for r in refs]
    slot_query = free_slots_query(schedule_ids, start, end)  # the service's own queries
    appointment_query = busy_query(actor_refs, start, end)
    result = await find_slots(ctx, query, now=now)  # also warms the page cache
    slots = (await store.search(slot_query)).resources
    booked = (await store.search(appointment_query)).resources

    async def both_raw() -> None:
        await store.search(slot_query)
        await store.search(appointment_query)

    service_ms, raw_ms, raw_both_ms = await medians_ms([
        lambda: find_slots(ctx, query, now=now), lambda: store.search(slot_query), both_raw,
    ], runs)
    print(f"{name}: {len(resources)} resources loaded in {loaded:.1f}s; {len(slots)} free "
          f"slots, {len(booked)} active appointments; {result.total} start times found")
    print(f"  find_slots median {service_ms:7.1f} ms | raw free-slot fetch {raw_ms:7.1f} ms "
          f"-> ratio {service_ms / raw_ms:4.2f}x | raw slots + appointments fetch "
          f"{raw_both_ms:7.1f} ms -> ratio {service_ms / raw_both_ms:4.2f}x")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_case("10 practitioners + 1 room, 14 days", 10, 1, 14, args.runs,
                             Path(tmp)))
        asyncio.run(run_case("50 practitioners, 30 days", 50, 0, 30, args.runs, Path(tmp)))


if __name__ == "__main__":
    main()
