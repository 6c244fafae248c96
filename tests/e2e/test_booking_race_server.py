"""The booking race against a real server: two worker processes, real HTTP clients on loopback.

In-process tests share one event loop; here the clients race through separate uvicorn
processes, so only the store's conditional write can decide who gets the slot: SQLite's
guarded IMMEDIATE transaction across processes, or MongoDB's conditional update.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from fhir_server.auth.keys import load_or_create_keys
from tests.e2e.factories import END, START, make_appointment, make_schedule, make_slot
from tests.e2e.test_cli import running_server
from tests.e2e.tokens import bearer, mint
from tests.support.mongo_server import mongo_database_url

CLIENTS = 60
WORKERS = 2


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`fhir-scheduler serve --workers 2` on a fresh store; yields the FHIR base URL and an
    administrator token signed with the server's own keys (from its data dir)."""
    settings = {}
    if request.param == "mongo":
        uri = request.getfixturevalue("mongodb_uri")
        settings["store_url"] = mongo_database_url(uri, f"race_{uuid4().hex}")
    with running_server(tmp_path, "--workers", str(WORKERS), **settings) as base:
        origin = base.removesuffix("/fhir")
        token = mint(keys=load_or_create_keys(tmp_path), audience=base, issuer=f"{origin}/auth")
        yield base, token


async def test_many_clients_on_two_workers_book_one_slot_exactly_once(
        server: tuple[str, str]) -> None:
    base, token = server
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base + "/", limits=limits, timeout=60,
                                 headers=bearer(token)) as http:
        schedule = (await http.post("Schedule", json=make_schedule("Practitioner/p1"))).json()
        slot = (await http.post("Slot", json=make_slot(schedule["id"]))).json()
        assert slot["status"] == "free"

        async def book(n: int) -> httpx.Response:
            appointment = make_appointment(patient=f"Patient/racer-{n}",
                                           slot=[{"reference": f"Slot/{slot['id']}"}])
            return await http.post("Appointment", json=appointment)

        await asyncio.gather(*(http.get("metadata") for _ in range(CLIENTS)))  # open connections
        responses = await asyncio.gather(*(book(n) for n in range(CLIENTS)))

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 1, 409: CLIENTS - 1}
        losers = [r.json() for r in responses if r.status_code == 409]
        assert all(o["issue"][0]["code"] == "conflict" for o in losers)
        final = (await http.get(f"Slot/{slot['id']}")).json()
        booked = (await http.get("Appointment", params={"slot": f"Slot/{slot['id']}"})).json()
        assert final["status"] == "busy"
        assert booked["total"] == 1 and booked["entry"][0]["resource"]["start"] == START
        assert booked["entry"][0]["resource"]["end"] == END
