"""An app with SMS replies enabled, driven both as a FHIR client (admin token) and as a
patient's phone provider, browser or calendar app (no token), over one ASGI transport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fhir_server.app import create_app
from fhir_server.notify.links import SignedLinks
from fhir_server.seed.directory import PATIENTS, make_patient
from fhir_server.settings import Settings
from fhir_server.store.factory import open_store_for_url
from tests.e2e.checks import created
from tests.e2e.conftest import make_settings
from tests.e2e.factories import make_schedule, make_slot
from tests.e2e.racing import WARM_CONNECTIONS, YieldingStore
from tests.e2e.test_appointment_operations import booked, candidate, open_slot, read
from tests.e2e.tokens import BASE, admin_headers

ORIGIN = "http://testserver"
SMS_TOKEN = "twilio-auth-token"
MARIA = "Patient/maria-garcia"
MARIA_MOBILE = "+16175550141"  # as Twilio sends it; the demo stores "+1-617-555-0141"
PRACTITIONER = "Practitioner/p1"

Resource = dict[str, Any]


@dataclass(frozen=True)
class Clinic:
    fhir: httpx.AsyncClient  # an administrator's FHIR client at BASE
    web: httpx.AsyncClient  # no credentials, at the server's origin
    settings: Settings

    @property
    def links(self) -> SignedLinks:
        """Links as the message composer makes them: from the same settings."""
        return SignedLinks.from_settings(self.settings)


@asynccontextmanager
async def running_clinic(tmp_path: Path, store_url: str, *,
                         racing: bool = False) -> AsyncIterator[Clinic]:
    """The clinic's app; `racing` puts it on a store that interleaves callers (`racing.py`)."""
    settings = make_settings(tmp_path, store_url=store_url, sms_auth_token=SMS_TOKEN)
    store = YieldingStore(open_store_for_url(store_url, timeout_ms=settings.mongo_timeout_ms)) \
        if racing else None
    app = create_app(settings, store=store)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        if store is not None:
            await asyncio.gather(*(store.ping() for _ in range(WARM_CONNECTIONS)))
        transport = httpx.ASGITransport(app=app)
        async with (httpx.AsyncClient(transport=transport, base_url=BASE + "/",
                                      headers=admin_headers()) as fhir,
                    httpx.AsyncClient(transport=transport, base_url=ORIGIN) as web):
            yield Clinic(fhir, web, settings)


async def add_maria(clinic: Clinic) -> None:
    """The demo patient María García, exactly as the demo seed stores her."""
    maria = make_patient(*PATIENTS[0])
    maria.pop("managingOrganization")
    response = await clinic.fhir.put(MARIA, json=maria)
    assert response.status_code == 201, response.text


async def book_for_maria(clinic: Clinic, when: tuple[str, str]) -> Resource:
    """A booked appointment with the practitioner; María has not answered yet."""
    return await booked(clinic.fhir, [await open_slot(clinic.fhir, when)], when=when,
                        patient=MARIA)


async def schedule_of(clinic: Clinic, practitioner: str = PRACTITIONER) -> str:
    """A new Schedule of the practitioner (in America/New_York); its id."""
    return str((await created(clinic.fhir, make_schedule(practitioner)))["id"])


async def slot_in(clinic: Clinic, schedule_id: str, when: tuple[str, str], *,
                  status: str = "free") -> str:
    """A new Slot of the Schedule; its id."""
    return str((await created(clinic.fhir, make_slot(schedule_id, when[0], when[1],
                                                     status=status)))["id"])


async def hold_for_maria(clinic: Clinic, when: tuple[str, str]) -> Resource:
    """A pending appointment the practitioner accepted and María has yet to."""
    slot_id = await open_slot(clinic.fhir, when)
    appointment = candidate([slot_id], when=when, status="pending", participant=[
        {"actor": {"reference": MARIA}, "required": "required", "status": "needs-action"},
        {"actor": {"reference": PRACTITIONER}, "required": "required", "status": "accepted"}])
    response = await clinic.fhir.post("Appointment", json=appointment)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def appointment(clinic: Clinic, id: str) -> Resource:
    return await read(clinic.fhir, f"Appointment/{id}")


def maria_status(appointment: Resource) -> str:
    [maria] = [p for p in appointment["participant"] if p["actor"]["reference"] == MARIA]
    return str(maria["status"])


def twilio_signature(url: str, form: dict[str, str], token: str = SMS_TOKEN) -> str:
    """Computed as Twilio documents it, independently of the server's code."""
    data = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
                            ).decode()
