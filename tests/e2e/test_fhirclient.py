"""`fhirclient` (SMART's Python client) against a real server: it finds the OAuth endpoints in
the CapabilityStatement's `oauth-uris` extension, runs the standalone launch with PKCE, and
reads the patient's Appointment with the token it got."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fhirclient import client
from fhirclient.models.appointment import Appointment

from tests.e2e.smart_app import PASSWORDS, REDIRECT, read_form
from tests.e2e.test_cli import CLI, cli_env, running_server

APP = "fhirclient-app"


def test_fhirclient_discovers_the_endpoints_logs_in_and_reads_an_appointment(
        tmp_path: Path) -> None:
    subprocess.run(CLI + ["clients", "add", "--client-id", APP, "--redirect-uri", REDIRECT,
                          "--scope", "launch/patient openid fhirUser patient/*.rs"],
                   env=cli_env(tmp_path), check=True, capture_output=True)
    with running_server(tmp_path, "--seed-if-empty") as base:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
        smart = client.FHIRClient(settings={"app_id": APP, "api_base": base + "/",
                                            "redirect_uri": REDIRECT,
                                            "scope": "openid fhirUser patient/*.rs"})
        assert smart.prepare() is False  # it has read the CapabilityStatement, no token yet
        authorize_url = smart.authorize_url
        assert authorize_url.startswith(f"{origin}/auth/authorize?")
        assert smart.server.auth._token_uri == f"{origin}/auth/token"

        with httpx.Client() as browser:  # the patient logs in; no picker for her own record
            page = browser.get(authorize_url)
            assert page.status_code == 200, page.text
            callback = browser.post(f"{origin}/auth/login", data={
                **read_form(page.text).fields, "username": "maria.garcia",
                "password": PASSWORDS["maria.garcia"]})
        assert callback.status_code == 302, callback.text
        smart.handle_callback(callback.headers["location"])

        assert smart.ready and smart.patient_id == "maria-garcia"
        search = Appointment.where(struct={"patient": "maria-garcia"})
        (found,) = list(search.perform_resources_iter(smart.server))
        appointment = Appointment.read(found.id, smart.server)
        assert any(p.actor.reference == "Patient/maria-garcia"
                   for p in appointment.participant)
