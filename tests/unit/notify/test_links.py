"""Signed patient links: bound to one action and resource, expiring, tamper-evident; the
secret is generated once into the data dir (0600) and reused."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fhir_server.notify.links import (
    ExpiredLink,
    InvalidLink,
    LinkAction,
    LinkSecretError,
    SignedLinks,
    load_or_create_secret,
)
from fhir_server.settings import Settings

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def links(clock: Clock | None = None, secret: bytes = b"k" * 32) -> SignedLinks:
    return SignedLinks(secret, public_url="https://clinic.example/", ttl=timedelta(hours=72),
                       clock=clock or Clock())


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.mark.parametrize("action", [LinkAction.CONFIRM, LinkAction.CANCEL,
                                    LinkAction.RESCHEDULE, LinkAction.BOOK])
def test_each_link_grants_its_action_on_its_appointment_until_it_expires(
        action: LinkAction) -> None:
    signer = links()
    url = getattr(signer, action.value)("appt-7")

    assert url.startswith("https://clinic.example/links/")
    claim = signer.verify(token_of(url))
    assert (claim.action, claim.subject) == (action, "appt-7")
    assert claim.expires == NOW + timedelta(hours=72)


def test_a_link_is_refused_once_expired() -> None:
    clock = Clock()
    signer = links(clock)
    token = token_of(signer.cancel("appt-7"))

    clock.now = NOW + timedelta(hours=72)

    with pytest.raises(ExpiredLink):
        signer.verify(token)


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
    lambda t: links().token(LinkAction.CONFIRM, "appt-8", expires=None)[:10] + t[10:],
    lambda t: t.split(".")[0],
    lambda t: "not-a-token",
])
def test_a_tampered_or_malformed_link_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    token = token_of(links().cancel("appt-7"))

    with pytest.raises(InvalidLink) as refused:
        links().verify(tamper(token))
    assert not isinstance(refused.value, ExpiredLink)


def test_a_link_signed_with_another_secret_is_refused() -> None:
    token = token_of(links(secret=b"x" * 32).confirm("appt-7"))

    with pytest.raises(InvalidLink):
        links().verify(token)


def test_feed_tokens_never_expire_and_belong_to_a_practitioner_or_patient() -> None:
    clock = Clock()
    signer = links(clock)
    url = signer.feed_url("Practitioner/dr-okafor")
    clock.now = NOW + timedelta(days=3650)

    assert url.startswith("https://clinic.example/calendar/") and url.endswith(".ics")
    claim = signer.verify(url.rsplit("/", 1)[1].removesuffix(".ics"))
    assert (claim.action, claim.subject, claim.expires) == (
        LinkAction.FEED, "Practitioner/dr-okafor", None)
    with pytest.raises(ValueError):
        signer.feed_token("Organization/clinic")


def test_the_generated_secret_is_private_and_survives_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, base_url="https://fhir.clinic.example/fhir")

    url = SignedLinks.from_settings(settings).confirm("appt-7")
    again = SignedLinks.from_settings(settings)

    assert url.startswith("https://fhir.clinic.example/links/")
    assert again.verify(token_of(url)).subject == "appt-7"
    assert stat.S_IMODE((tmp_path / "link-secret").stat().st_mode) == 0o600


def test_a_configured_secret_and_public_url_win(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, link_secret="s" * 40,
                        public_url="https://patients.clinic.example")

    url = SignedLinks.from_settings(settings).cancel("appt-7")

    assert url.startswith("https://patients.clinic.example/links/")
    assert not (tmp_path / "link-secret").exists()


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    load_or_create_secret(tmp_path)
    (tmp_path / "link-secret").chmod(0o644)

    with pytest.raises(LinkSecretError):
        load_or_create_secret(tmp_path)
