"""Helpers for tests that look at the audit trail, which the server writes in the background."""

from __future__ import annotations

from typing import Any

import httpx


async def audit_flushed(client: httpx.AsyncClient) -> None:
    """Wait until every AuditEvent of the requests made so far is stored."""
    transport = client._transport  # the ASGITransport the e2e fixtures build
    assert isinstance(transport, httpx.ASGITransport)
    await transport.app.state.audit_writer.drain()  # type: ignore[attr-defined]


async def audit_events(client: httpx.AsyncClient, query: str = "",
                       headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The stored AuditEvents matching `query` (after flushing), oldest first (events of one
    millisecond in any order)."""
    await audit_flushed(client)
    response = await client.get(f"AuditEvent?{query}&_count=1000", headers=headers)
    assert response.status_code == 200, response.text
    events = [entry["resource"] for entry in response.json().get("entry", [])]
    return sorted(events, key=lambda event: event["recorded"])
