"""SMART App Launch end to end: authlib's OAuth2 client is the app, a form-posting browser
the user, the embedded server the EHR's authorization server (standalone and EHR launch)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.smart_app import (
    CONFIDENTIAL_APP,
    ISSUER,
    PUBLIC_APP,
    TOKEN_URL,
    authorization_url,
    demo_server,
    log_in,
    new_verifier,
    pick,
    read_form,
    redirect_params,
    smart_app,
    verified_id_token,
)
from tests.e2e.test_cli import CLI, cli_env
from tests.e2e.tokens import BASE, bearer


@pytest.fixture(autouse=True)
def _http_is_fine_for_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test server speaks http


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with demo_server(tmp_path) as client:
        yield client


def launch_id(tmp_path: Path, *args: str) -> str:
    """`fhir-scheduler launch ...` as the EHR runs it, against the same data dir."""
    result = subprocess.run(CLI + ["launch", *args],
                            env=cli_env(tmp_path, base_url=BASE), capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()


async def test_standalone_launch_by_a_doctor_picks_a_patient_and_reads_her_appointments(
        http: httpx.AsyncClient) -> None:
    scope = "launch/patient openid fhirUser offline_access patient/Appointment.rs"
    async with smart_app(http, scope=scope) as app:
        verifier = new_verifier()
        url = await authorization_url(app, verifier, nonce="n-0S6_WzA2Mj")
        picker = await log_in(http, url, "dr.okafor")
        # A doctor picks among the patients she sees: María has an appointment with her.
        assert read_form(picker.text).patients == ["maria-garcia"]
        callback = await pick(http, picker, "maria-garcia")
        location = callback.headers["location"]
        token = await app.fetch_token(TOKEN_URL, authorization_response=location,
                                      code_verifier=verifier)

        assert token["patient"] == "maria-garcia" and token["need_patient_banner"] is True
        assert token["smart_style_url"] == f"{ISSUER}/smart-style.json"
        assert set(token["scope"].split()) == set(scope.split())
        assert callback.headers["cache-control"] == "no-store"
        found = await http.get(f"{BASE}/Appointment", params={"patient": "maria-garcia"},
                               headers=bearer(token["access_token"]))
        assert found.status_code == 200, found.text
        assert found.json()["total"] == 1
        other = await http.get(f"{BASE}/Appointment", params={"patient": "james-wilson"},
                               headers=bearer(token["access_token"]))
        assert other.status_code in (200, 403) and other.json().get("total", 0) == 0

        id_claims = await verified_id_token(http, token["id_token"], PUBLIC_APP)
        assert id_claims["fhirUser"] == "Practitioner/dr-amara-okafor"
        assert id_claims["nonce"] == "n-0S6_WzA2Mj" and id_claims["sub"] == "dr.okafor"

        refreshed = await app.refresh_token(TOKEN_URL, refresh_token=token["refresh_token"])
        assert refreshed["patient"] == "maria-garcia"
        assert refreshed["refresh_token"] != token["refresh_token"]
        again = await http.get(f"{BASE}/Appointment", params={"patient": "maria-garcia"},
                               headers=bearer(refreshed["access_token"]))
        assert again.status_code == 200 and again.json()["total"] == 1


async def test_a_doctor_cannot_pick_a_patient_she_does_not_see(http: httpx.AsyncClient) -> None:
    async with smart_app(http, scope="launch/patient patient/Appointment.rs") as app:
        picker = await log_in(http, await authorization_url(app, new_verifier()), "dr.okafor")
        refused = await pick(http, picker, "james-wilson")
        assert refused.status_code == 400 and "cannot be chosen" in refused.text


async def test_a_patient_gets_her_own_record_without_a_picker(http: httpx.AsyncClient) -> None:
    scope = "launch/patient openid fhirUser patient/*.cruds user/Patient.cruds"
    async with smart_app(http, scope=scope) as app:
        verifier = new_verifier()
        callback = await log_in(http, await authorization_url(app, verifier), "maria.garcia")
        token = await app.fetch_token(TOKEN_URL, authorization_response=callback.headers[
            "location"], code_verifier=verifier)

    assert token["patient"] == "maria-garcia"
    # Scopes are cut to the patient role: Patient read and search only, no refresh token.
    assert "user/Patient.rs" in token["scope"].split() and "refresh_token" not in token
    claims = await verified_id_token(http, token["id_token"], PUBLIC_APP)
    assert claims["fhirUser"] == "Patient/maria-garcia"
    own = await http.get(f"{BASE}/Patient/maria-garcia", headers=bearer(token["access_token"]))
    assert own.status_code == 200
    other = await http.get(f"{BASE}/Patient/james-wilson", headers=bearer(token["access_token"]))
    assert other.status_code in (403, 404)


@pytest.mark.parametrize("username", ["admin", "front.desk"])
async def test_staff_and_administrators_pick_any_patient(http: httpx.AsyncClient,
                                                         username: str) -> None:
    async with smart_app(http, scope="launch/patient user/Appointment.rs",
                         client_id=CONFIDENTIAL_APP) as app:
        verifier = new_verifier()
        picker = await log_in(http, await authorization_url(app, verifier), username)
        assert len(read_form(picker.text).patients) == 4
        callback = await pick(http, picker, "james-wilson")
        token = await app.fetch_token(TOKEN_URL, authorization_response=callback.headers[
            "location"], code_verifier=verifier)

    assert token["patient"] == "james-wilson"
    listed = await http.get(f"{BASE}/Appointment", headers=bearer(token["access_token"]))
    assert listed.status_code == 200 and listed.json()["total"] == 2  # user/ reaches all


async def test_ehr_launch_returns_the_launch_context(http: httpx.AsyncClient,
                                                     tmp_path: Path) -> None:
    launch = launch_id(tmp_path, "--patient", "Patient/maria-garcia", "--encounter",
                       "Encounter/visit-7", "--no-need-patient-banner",
                       "--smart-style-url", "https://ehr.example/style.json")
    async with smart_app(http, scope="launch openid fhirUser patient/Appointment.rs") as app:
        verifier = new_verifier()
        url = await authorization_url(app, verifier, launch=launch)
        callback = await log_in(http, url, "front.desk")
        token = await app.fetch_token(TOKEN_URL, authorization_response=callback.headers[
            "location"], code_verifier=verifier)

    assert token["patient"] == "maria-garcia" and token["encounter"] == "visit-7"
    assert token["need_patient_banner"] is False
    assert token["smart_style_url"] == "https://ehr.example/style.json"
    assert "launch" in token["scope"].split()
    found = await http.get(f"{BASE}/Appointment", headers=bearer(token["access_token"]))
    assert found.status_code == 200 and found.json()["total"] == 1  # María's only


async def test_a_patient_cannot_take_an_ehr_launch_for_someone_else(
        http: httpx.AsyncClient, tmp_path: Path) -> None:
    launch = launch_id(tmp_path, "--patient", "Patient/james-wilson")
    async with smart_app(http, scope="launch patient/Appointment.rs") as app:
        url = await authorization_url(app, new_verifier(), launch=launch, state="s1")
        refused = redirect_params(await log_in(http, url, "maria.garcia"))
    assert refused["error"] == "access_denied" and refused["state"] == "s1"


async def test_the_login_page_is_plain_html_that_cannot_be_framed(
        http: httpx.AsyncClient) -> None:
    async with smart_app(http, scope="openid fhirUser user/Appointment.rs") as app:
        page = await http.get(await authorization_url(app, new_verifier()))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'type="password"' in page.text and PUBLIC_APP in page.text


async def test_a_user_added_with_the_cli_logs_in(http: httpx.AsyncClient,
                                                 tmp_path: Path) -> None:
    added = subprocess.run(CLI + ["users", "add", "--username", "dr.chen", "--role", "doctor",
                                  "--fhir-user", "Practitioner/dr-mei-lin-chen",
                                  "--password-stdin"],
                           input="a password from stdin\n", env=cli_env(tmp_path),
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    async with smart_app(http, scope="openid fhirUser user/Schedule.rs") as app:
        verifier = new_verifier()
        callback = await log_in(http, await authorization_url(app, verifier), "dr.chen",
                                "a password from stdin")
        token = await app.fetch_token(TOKEN_URL, authorization_response=callback.headers[
            "location"], code_verifier=verifier)
    claims = await verified_id_token(http, token["id_token"], PUBLIC_APP)
    assert claims["fhirUser"] == "Practitioner/dr-mei-lin-chen"
    assert "patient" not in token  # no launch/patient asked, so no patient context
