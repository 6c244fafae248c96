"""The `$hold` race: many clients hold one slot at once, exactly one wins (both stores)."""

from __future__ import annotations

import asyncio

import httpx

from fhir_server.scheduling.slot_hold import parse_hold
from tests.e2e.checks import outcome_issues
from tests.e2e.test_appointment_operations import (
    appointment_count,
    appointment_of,
    candidate,
    open_slot,
    operation,
    read,
    resource_part,
)

CLIENTS = 30


async def test_thirty_concurrent_holds_of_one_slot_have_exactly_one_winner(
        client: httpx.AsyncClient) -> None:
    slot_id = await open_slot(client)

    async def attempt(n: int) -> httpx.Response:
        appointment = candidate([slot_id], patient=f"Patient/racer-{n}")
        return await operation(client, "Appointment/$hold",
                               resource_part("appointment-resource", appointment))

    responses = await asyncio.gather(*(attempt(n) for n in range(CLIENTS)))

    winners = [r for r in responses if r.status_code in (200, 201)]
    losers = [r for r in responses if r not in winners]
    assert len(winners) == 1, [r.status_code for r in responses]
    for loser in losers:
        outcome_issues(loser, 409)
    held = appointment_of(winners[0])
    assert held["status"] == "pending"
    slot = await read(client, f"Slot/{slot_id}")
    assert slot["status"] == "busy-tentative"
    claim = parse_hold(slot)
    assert claim is not None and claim.appointment_id == held["id"]
    assert await appointment_count(client) == 1
