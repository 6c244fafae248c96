"""What travels on the wire: FHIR JSON in and out, 406/415 for other formats, errors as
OperationOutcome, and unexpected failures that leak nothing but a request id."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from fhir_server.app import create_app
from fhir_server.fhir.errors import StoreUnavailable
from fhir_server.services import resources
from tests.e2e.checks import FHIR_JSON, created, outcome_issues, versions_written
from tests.e2e.conftest import BASE, make_settings
from tests.e2e.factories import make_patient
from tests.e2e.tokens import admin_headers


@pytest.fixture
async def server_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Like `client`, but app exceptions reach the client as responses, as with a real server."""
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE + "/",
                                     headers=admin_headers()) as http:
            yield http


async def test_resources_bundles_and_errors_are_served_as_fhir_json(
        client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    responses = [
        await client.get(f"Patient/{patient['id']}"),
        await client.get(f"Patient/{patient['id']}/_history/1"),
        await client.get("Patient", params={"family": "Okafor"}),
        await client.get("_history"),
        await client.get("metadata"),
        await client.get("Patient/never-was"),
    ]

    for response in responses:
        assert response.headers["content-type"].startswith(FHIR_JSON), response.request.url
        assert response.json()["resourceType"]


@pytest.mark.parametrize("content_type", [
    "application/fhir+json", "application/json", "application/fhir+json; charset=utf-8",
    "application/json; charset=UTF-8"])
async def test_json_request_bodies_are_accepted(client: httpx.AsyncClient,
                                                content_type: str) -> None:
    response = await client.post("Patient", content=orjson.dumps(make_patient()),
                                 headers={"Content-Type": content_type})

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml",
                                          "application/fhir+xml",
                                          "application/x-www-form-urlencoded"])
async def test_a_body_of_another_media_type_is_415_and_not_stored(
        client: httpx.AsyncClient, content_type: str) -> None:
    patient = await created(client, make_patient())
    body = orjson.dumps({**patient, "active": False})

    post = await client.post("Patient", content=body, headers={"Content-Type": content_type})
    put = await client.put(f"Patient/{patient['id']}", content=body,
                           headers={"Content-Type": content_type})

    outcome_issues(post, 415)
    outcome_issues(put, 415)
    assert await versions_written(client) == 1


@pytest.mark.parametrize("value", ["json", "application/fhir+json", "application/json"])
async def test_format_json_is_accepted(client: httpx.AsyncClient, value: str) -> None:
    patient = await created(client, make_patient())

    read = await client.get(f"Patient/{patient['id']}", params={"_format": value})
    search = await client.get("Patient", params={"_format": value})
    history = await client.get("_history", params={"_format": value})

    assert read.json() == patient
    assert search.json()["total"] == 1
    assert history.json()["total"] == 1


@pytest.mark.parametrize("path", ["Patient/{id}", "Patient/{id}/_history/1", "Patient",
                                  "Patient/{id}/_history", "_history", "metadata"])
async def test_format_xml_is_406_operation_outcome(client: httpx.AsyncClient,
                                                   path: str) -> None:
    patient = await created(client, make_patient())

    response = await client.get(path.format(id=patient["id"]), params={"_format": "xml"})

    outcome_issues(response, 406)


async def test_a_write_asking_for_xml_is_406_and_not_stored(client: httpx.AsyncClient) -> None:
    response = await client.post("Patient", json=make_patient(), params={"_format": "xml"})

    outcome_issues(response, 406)
    assert await versions_written(client) == 0


async def test_an_accept_header_for_xml_only_is_406(client: httpx.AsyncClient) -> None:
    patient = await created(client, make_patient())

    xml_only = await client.get(f"Patient/{patient['id']}",
                                headers={"Accept": "application/fhir+xml"})
    either = await client.get(f"Patient/{patient['id']}",
                              headers={"Accept": "application/fhir+xml, application/fhir+json"})

    outcome_issues(xml_only, 406)
    assert either.status_code == 200


@pytest.mark.parametrize("url", ["http://testserver/fhir/Patient/1/everything/else/too",
                                 "http://testserver/nowhere"])
async def test_an_unknown_route_is_404_operation_outcome(client: httpx.AsyncClient,
                                                         url: str) -> None:
    issues = outcome_issues(await client.get(url), 404)

    assert issues[0]["code"] == "not-found"


async def test_a_method_a_route_does_not_have_is_405_operation_outcome(
        client: httpx.AsyncClient) -> None:
    outcome_issues(await client.delete("Patient"), 405)


async def test_an_unexpected_failure_is_500_without_details_and_with_a_request_id(
        server_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    async def broken_read(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(resources, "read", broken_read)

    with caplog.at_level(logging.ERROR, logger="fhir_server"):
        response = await server_client.get("Patient/p1")

    issues = outcome_issues(response, 500)
    assert "secret detail" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    assert request_id
    assert request_id in issues[0]["diagnostics"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged, "no log line names the request id"
    assert logged[0].exc_info is not None


async def test_a_client_request_id_is_echoed_on_success_and_failure(
        server_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = await server_client.get("metadata", headers={"X-Request-ID": "trace-me-1"})

    async def broken_read(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(resources, "read", broken_read)
    failed = await server_client.get("Patient/p1", headers={"X-Request-ID": "trace-me-2"})

    assert ok.headers["x-request-id"] == "trace-me-1"
    assert failed.status_code == 500
    assert failed.headers["x-request-id"] == "trace-me-2"


async def test_a_store_outage_during_a_request_is_503_operation_outcome(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unreachable(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("The store did not answer")

    monkeypatch.setattr(resources, "read", unreachable)

    issues = outcome_issues(await client.get("Patient/p1"), 503)

    assert issues[0]["code"] == "transient"
