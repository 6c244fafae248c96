"""Reminders end to end with the default filesystem broker: a booking made over the API is
confirmed by email by a real worker and recorded as a Communication; a message the mail server
keeps refusing ends as `not-done`, found with `GET Communication?status=not-done`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_server.app import create_app
from tests.e2e.conftest import make_settings
from tests.e2e.factories import make_appointment, make_patient
from tests.e2e.tokens import BASE, admin_headers
from tests.support.dispatch_processes import process_env, start, stop
from tests.support.smtp_sink import SmtpSink, running_smtp_sink

EMAIL = "maria.garcia@example.org"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with running_smtp_sink() as sink:
        yield sink


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=BASE + "/", headers=admin_headers()) as http:
            yield http


@pytest.fixture
def dispatcher(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[None]:
    """A worker and beat on the filesystem broker in the test's data dir."""
    env = process_env(tmp_path, broker_url="", smtp_port=smtp_sink.port,
                      dispatch_interval_s="0.2", dispatch_max_attempts="2")
    processes = [start("worker", env, tmp_path / "worker.log"),
                 start("beat", env, tmp_path / "beat.log")]
    yield
    for process in processes:
        stop(process)


async def eventually(check: Callable[[], Any], *, timeout_s: float = 60) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)
    return result


async def book(api: httpx.AsyncClient) -> dict[str, Any]:
    patient = make_patient("Garcia", id="pat1", telecom=[{"system": "email", "value": EMAIL}])
    assert (await api.put("Patient/pat1", json=patient)).status_code in (200, 201)
    response = await api.post("Appointment", json=make_appointment())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def communications(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await api.get("Communication", params=params)
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


async def test_a_booking_is_confirmed_by_email_and_recorded(
        api: httpx.AsyncClient, smtp_sink: SmtpSink, dispatcher: None) -> None:
    appointment = await book(api)

    [record] = await eventually(lambda: communications(api, status="completed"))

    [email] = smtp_sink.messages()
    assert smtp_sink.envelopes[0].rcpt_tos == [EMAIL]
    assert record["about"] == [{"reference": f"Appointment/{appointment['id']}"}]
    assert record["recipient"] == [{"reference": "Patient/pat1"}]
    assert record["medium"][0]["coding"][0]["code"] == "EMAILWRIT"
    assert record["payload"][0]["contentString"].split() == email.get_body(
        ("plain",)).get_content().split()
    assert [i["value"] for i in record["identifier"]][1] == email["Message-ID"]
    [request_ref] = record["basedOn"]
    request = (await api.get(request_ref["reference"])).json()
    assert request["status"] == "completed"


async def test_a_message_refused_on_every_attempt_is_not_done(
        api: httpx.AsyncClient, smtp_sink: SmtpSink, dispatcher: None) -> None:
    smtp_sink.data_reply = "451 4.3.0 Mailbox temporarily unavailable"
    await book(api)

    [record] = await eventually(lambda: communications(api, status="not-done"))

    assert "451" in record["statusReason"]["text"]
    assert "after 2 attempts" in record["statusReason"]["text"]
    assert smtp_sink.messages() == []
    [request_ref] = record["basedOn"]
    assert (await api.get(request_ref["reference"])).json()["status"] == "on-hold"
