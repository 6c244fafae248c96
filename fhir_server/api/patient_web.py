"""The routes patients and their calendar apps reach without a bearer token (a signed link,
feed token or provider signature is the credential), outside the FHIR base."""

from __future__ import annotations

from fastapi import FastAPI

from fhir_server.api import calendar_feed, inbound_sms, patient_links
from fhir_server.notify.links import SignedLinks
from fhir_server.settings import Settings


def install_patient_web(app: FastAPI, settings: Settings) -> None:
    """Calendar feeds, one-click links and the inbound SMS webhook, with their signers."""
    app.state.links = SignedLinks.from_settings(settings)
    app.state.sms_auth_token = settings.sms_auth_token
    for module in (calendar_feed, patient_links, inbound_sms):
        app.include_router(module.router)

