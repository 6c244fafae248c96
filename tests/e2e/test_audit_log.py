"""The audit log under load and its search: a burst loses no record even while requests wait
for the writer, and AuditEvent search answers dates, codes, clients, paging and includes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from fhir_server.app import create_app
from fhir_server.audit.writer import AuditWriter
from fhir_server.fhir.search.model import StoreQuery
from tests.e2e.audit_support import audit_events, audit_flushed
from tests.e2e.checks import outcome_issues
from tests.e2e.conftest import BASE, make_settings
from tests.e2e.factories import make_communication, make_patient
from tests.e2e.tokens import admin_headers, bearer, mint

BURST = 120


def app_of(client: httpx.AsyncClient) -> object:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app


async def test_a_burst_of_concurrent_requests_loses_no_audit_record(
        client: httpx.AsyncClient) -> None:
    app = app_of(client)
    await app.state.audit_writer.stop()  # type: ignore[attr-defined]
    # A tiny backlog limit, so most of the burst waits for the writer (backpressure).
    writer = AuditWriter(app.state.fhir.store.audit_log,  # type: ignore[attr-defined]
                         flush_interval_s=0.01, batch_size=8, high_water=16)
    app.state.audit_writer = writer  # type: ignore[attr-defined]
    writer.start()
    assert (await client.put("Patient/p1", json={**make_patient(), "id": "p1"})).status_code \
        == 201

    def one(i: int) -> object:
        if i % 3 == 0:
            return client.get("Patient/p1")
        if i % 3 == 1:
            return client.get("Patient", params={"_id": "p1"})
        return client.get("Patient/p1", headers={"Authorization": "Bearer not-a-jwt"})

    statuses = [r.status_code for r in await asyncio.gather(*(one(i) for i in range(BURST)))]
    assert sorted(set(statuses)) == [200, 401]
    await audit_flushed(client)

    counted = await client.get("AuditEvent", params={"_summary": "count"})
    assert counted.json()["total"] == BURST + 1  # and the update
    refused = await client.get("AuditEvent", params={"outcome": "4", "_summary": "count"})
    assert refused.json()["total"] == BURST // 3


async def test_dates_codes_and_clients_narrow_the_search(client: httpx.AsyncClient) -> None:
    await client.get("Patient/p1")
    await client.get("Patient", params={"name": "x"})
    before = datetime.now(UTC) - timedelta(minutes=1)
    after = datetime.now(UTC) + timedelta(minutes=1)
    stamp = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    later = after.strftime("%Y-%m-%dT%H:%M:%SZ")

    assert len(await audit_events(client, f"date=ge{stamp}&date=lt{later}")) == 2
    assert await audit_events(client, f"date=gt{later}") == []
    assert len(await audit_events(client, f"_lastUpdated=le{later}&subtype=read")) == 1
    assert len(await audit_events(client, "outcome=4")) == 1  # the read of a missing patient
    assert len(await audit_events(client, "action=E&type=rest")) >= 1
    assert await audit_events(client, "type=http://x|rest") == []
    assert len(await audit_events(client, "agent-name=TEST&subtype:not=search-type")) == 1


async def test_newest_first_with_paging_links(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.get("Patient/p1")
    await audit_flushed(client)

    first = (await client.get("AuditEvent", params={"_count": "2"})).json()
    recorded = [e["resource"]["recorded"] for e in first["entry"]]
    assert recorded == sorted(recorded, reverse=True) and first["total"] == 3
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = (await client.get(following)).json()  # the first search may be logged by now
    assert all(e["resource"]["recorded"] <= recorded[-1] for e in second["entry"])
    oldest = (await client.get("AuditEvent", params={"_sort": "date", "_count": "1"})).json()
    assert oldest["entry"][0]["resource"]["recorded"] <= recorded[-1]


async def test_parameters_the_log_cannot_answer_are_refused_or_ignored_when_lenient(
        client: httpx.AsyncClient) -> None:
    outcome_issues(await client.get("AuditEvent", params={"address": "10.0.0.1"}), 400)
    outcome_issues(await client.get("AuditEvent", params={"_sort": "address"}), 400)
    lenient = await client.get("AuditEvent", params={"address": "10.0.0.1"},
                               headers={"Prefer": "handling=lenient"})
    assert lenient.status_code == 200
    assert "address" in lenient.json()["entry"][-1]["resource"]["issue"][0]["diagnostics"]


async def test_includes_reach_from_events_to_patients_and_back(client: httpx.AsyncClient) -> None:
    assert (await client.put("Patient/p1", json={**make_patient(), "id": "p1"})).status_code \
        == 201
    await client.get("Patient/p1")
    await audit_flushed(client)

    forward = (await client.get("AuditEvent", params={
        "subtype": "read", "_include": "AuditEvent:patient"})).json()
    assert {(e["resource"]["resourceType"], e["search"]["mode"]) for e in forward["entry"]} == {
        ("AuditEvent", "match"), ("Patient", "include")}
    back = (await client.get("Patient", params={
        "_id": "p1", "_revinclude": "AuditEvent:entity"})).json()
    assert sorted(e["resource"]["resourceType"] for e in back["entry"]) == [
        "AuditEvent", "AuditEvent", "Patient"]  # the update and the read


async def test_a_scope_constraint_narrows_an_audit_event_read(client: httpx.AsyncClient) -> None:
    await client.get("Patient?_id=x")
    [search] = await audit_events(client)

    reads_only = bearer(mint("user/AuditEvent.rs?subtype=read"))
    searches = bearer(mint("user/AuditEvent.rs?subtype=search-type"))
    outcome_issues(await client.get(f"AuditEvent/{search['id']}", headers=reads_only), 404)
    assert (await client.get(f"AuditEvent/{search['id']}", headers=searches)).json() == search


async def test_batches_and_transactions_read_audit_events_from_the_log(
        client: httpx.AsyncClient) -> None:
    await client.get("Patient?_id=x")
    [search] = await audit_events(client)
    read = {"request": {"method": "GET", "url": f"AuditEvent/{search['id']}"}}
    vread = {"request": {"method": "GET", "url": f"AuditEvent/{search['id']}/_history/1"}}

    batch = await client.post("", json={"resourceType": "Bundle", "type": "batch",
                                        "entry": [read, vread]})
    found, refused = batch.json()["entry"]
    assert found["response"]["status"] == "200 OK" and found["resource"] == search
    assert refused["response"]["status"].startswith("405")  # as in REST: no versions to read
    transaction = await client.post("", json={"resourceType": "Bundle", "type": "transaction",
                                              "entry": [read]})
    assert transaction.json()["entry"][0]["resource"] == search


async def test_an_include_of_an_audit_event_is_read_from_the_log(
        client: httpx.AsyncClient) -> None:
    await client.get("Patient?_id=x")
    [search] = await audit_events(client)
    reviewed = {**make_communication(), "id": "c1",
                "basedOn": [{"reference": f"AuditEvent/{search['id']}"}]}
    assert (await client.put("Communication/c1", json=reviewed)).status_code == 201

    found = (await client.get("Communication", params={
        "_id": "c1", "_include": "Communication:based-on"})).json()
    included = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "include"]
    assert included == [search]


async def test_records_wait_for_the_flush_interval_and_are_all_written_at_shutdown(
        tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, audit_flush_interval_s=60))
    async with app.router.lifespan_context(app):
        store = app.state.fhir.store
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=BASE + "/", headers=admin_headers()) as http:
            assert (await http.get("Patient/nobody")).status_code == 404
            assert (await http.get("Patient/nobody")).status_code == 404
            await asyncio.sleep(0.3)  # six times the default interval
            assert (await store.audit_log.search(StoreQuery("AuditEvent", limit=0))).total == 0
    # The app stopped: its writer wrote what was buffered before the store closed.
    await store.open()
    try:
        assert (await store.audit_log.search(StoreQuery("AuditEvent", limit=0))).total == 2
    finally:
        await store.close()
