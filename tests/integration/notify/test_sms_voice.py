"""SMS and voice senders against a real local HTTP server that answers like Twilio's REST API:
the request each sends (path, basic auth, form, idempotency key, TwiML), and how refusals,
throttling, server errors and an unreachable provider map to DeliveryFailed."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from xml.etree import ElementTree

import pytest

from fhir_server.notify.channels.sms import SmsSender
from fhir_server.notify.channels.voice import VoiceSender
from fhir_server.notify.messages import ChannelName, DeliveryFailed, OutboundMessage
from fhir_server.settings import Settings

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "secret-token"
CLINIC = "+16175550100"
# Numbers the fake provider answers specially, as Twilio's test credentials do.
INVALID, THROTTLED, BROKEN = "+15005550001", "+15005550429", "+15005550500"


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


Provider = tuple[str, list[Recorded]]  # the fake's API URL and what it received


class FakeTwilio(BaseHTTPRequestHandler):
    """Creates Messages and Calls; refuses the special numbers like the real API."""

    recorded: list[Recorded]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        self.recorded.append(Recorded(self.path, dict(self.headers), form))
        to = form["To"][0]
        if to == INVALID:
            self._answer(400, {"code": 21211, "message": f"The 'To' number {to} is not a "
                                                         "valid phone number.", "status": 400})
        elif to == THROTTLED:
            self._answer(429, {"code": 20429, "message": "Too Many Requests", "status": 429})
        elif to == BROKEN:
            self._answer(503, {"message": "Service Unavailable"})
        else:
            prefix = "SM" if self.path.endswith("/Messages.json") else "CA"
            self._answer(201, {"sid": f"{prefix}{len(self.recorded):032d}", "status": "queued"})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[Provider]:
    """The fake provider's API URL and the requests it received."""
    recorded: list[Recorded] = []
    handler = type("Handler", (FakeTwilio,), {"recorded": recorded})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/2010-04-01", recorded
    server.shutdown()
    server.server_close()


def settings(api_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"sms_api_url": api_url, "sms_account_sid": SID,
                                 "sms_auth_token": TOKEN, "sms_from": CLINIC,
                                 "sms_timeout_s": 2.0}
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def message(to: str = "+16175550141", channel: ChannelName = ChannelName.SMS,
            text: str = "Reminder: Dr. Okafor, Tue 11 Mar 10:00.", language: str = "en"
            ) -> OutboundMessage:
    return OutboundMessage(channel=channel, to=to, idempotency_key="cr-42/attempt-1",
                           subject="Reminder", text=text, language=language)


def sms(api_url: str) -> SmsSender:
    sender = SmsSender.from_settings(settings(api_url))
    assert sender is not None
    return sender


def voice(api_url: str) -> VoiceSender:
    sender = VoiceSender.from_settings(settings(api_url, voice_from="+16175550199"))
    assert sender is not None
    return sender


async def test_sms_posts_a_message_with_basic_auth_and_an_idempotency_key(
        provider: Provider) -> None:
    api_url, recorded = provider

    receipt = await sms(api_url).send(message())

    [request] = recorded
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.form == {"To": ["+16175550141"], "From": [CLINIC],
                            "Body": ["Reminder: Dr. Okafor, Tue 11 Mar 10:00."]}
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{SID}:{TOKEN}".encode()).decode()
    assert request.headers["I-Twilio-Idempotency-Token"] == "cr-42/attempt-1"
    assert receipt.channel is ChannelName.SMS
    assert receipt.provider_id == f"SM{1:032d}"


async def test_voice_calls_with_an_escaped_spoken_script_in_the_message_language(
        provider: Provider) -> None:
    api_url, recorded = provider
    script = 'Su cita con "Dr. Okafor" <mañana> a las 10 & traiga su tarjeta.'

    receipt = await voice(api_url).send(message(channel=ChannelName.VOICE, text=script,
                                                language="es"))

    [request] = recorded
    assert request.path == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert request.form["From"] == ["+16175550199"]
    assert request.form["To"] == ["+16175550141"]
    twiml = ElementTree.fromstring(request.form["Twiml"][0])
    says = twiml.findall("Say")
    assert twiml.tag == "Response" and len(says) == 2
    assert all(say.text == script and say.get("language") == "es" for say in says)
    assert receipt.channel is ChannelName.VOICE and receipt.provider_id.startswith("CA")


async def test_an_invalid_number_is_a_permanent_failure_naming_the_provider_code(
        provider: Provider) -> None:
    api_url, _ = provider

    with pytest.raises(DeliveryFailed) as failed:
        await sms(api_url).send(message(to=INVALID))

    assert failed.value.permanent
    assert "21211" in failed.value.reason


@pytest.mark.parametrize("to", [THROTTLED, BROKEN])
async def test_throttling_and_server_errors_are_retried(provider: Provider, to: str) -> None:
    api_url, recorded = provider

    for sender in (sms(api_url), voice(api_url)):
        with pytest.raises(DeliveryFailed) as failed:
            await sender.send(message(to=to))
        assert not failed.value.permanent
    assert len(recorded) == 2


async def test_an_unreachable_provider_is_a_transient_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DeliveryFailed) as failed:
        await sms(f"http://127.0.0.1:{port}/2010-04-01").send(message())

    assert not failed.value.permanent


def test_senders_are_off_without_an_api_url_or_a_sending_number() -> None:
    assert SmsSender.from_settings(Settings(sms_from=CLINIC)) is None
    assert SmsSender.from_settings(settings("http://provider.example", sms_from="")) is None
    assert VoiceSender.from_settings(settings("http://provider.example", sms_from="")) is None
    assert VoiceSender.from_settings(settings("http://provider.example")) is not None
