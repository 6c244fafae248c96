"""The `$hold` race: many clients hold one slot at once, exactly one wins (both stores).

Runs on `tests/e2e/racing.py`'s `YieldingStore`, which waits a random sub-millisecond latency
before every store call, so on SQLite too the clients interleave inside the slot claim.
"""

from __future__ import annotations

import asyncio

import httpx

from fhir_server.scheduling.slot_hold import parse_hold
from tests.e2e.checks import outcome_issues
from tests.e2e.test_appointment_operations import (
    appointment_of,
    candidate,
    open_slot,
    operation,
    read,
    resource_part,
)

CLIENTS = 30


async def test_thirty_concurrent_holds_of_one_slot_have_exactly_one_winner(
        racing: httpx.AsyncClient) -> None:
    slot_id = await open_slot(racing)

    async def attempt(n: int) -> httpx.Response:
        appointment = candidate([slot_id], patient=f"Patient/racer-{n}")
        return await operation(racing, "Appointment/$hold",
                               resource_part("appointment-resource", appointment))

    responses = await asyncio.gather(*(attempt(n) for n in range(CLIENTS)))

    winners = [r for r in responses if r.status_code in (200, 201)]
    assert len(winners) == 1, [r.status_code for r in responses]
    for loser in responses:
        if loser is not winners[0]:
            outcome_issues(loser, 409)
    held = appointment_of(winners[0])
    assert held["status"] == "pending"
    slot = await read(racing, f"Slot/{slot_id}")
    assert slot["status"] == "busy-tentative"
    claim = parse_hold(slot)
    assert claim is not None and claim.appointment_id == held["id"]
    history = await read(racing, "Appointment/_history")
    assert history["total"] == 1, "a losing hold left an Appointment version behind"
