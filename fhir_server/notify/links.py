"""Signed patient links: one-click confirm/cancel/reschedule/book URLs and calendar-feed URLs.

A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, payload)[:16])` with the
payload `v1|<action>|<subject>|<expiry epoch seconds or ->`: short enough for an SMS, bound
to one action and one resource, and refused once expired. Action links expire after
`link_ttl_h`; calendar-feed tokens never expire, and the only way to revoke one is to rotate
the secret (`FHIR_SCHEDULER_LINK_SECRET`, or delete `data_dir/link-secret`), which also voids
every outstanding action link.

Without a configured secret, one is generated on first use into `data_dir/link-secret`
(mode 0600, never overwritten), so links survive restarts and every process of one
deployment signs alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from fhir_server.auth.keys import write_new_private_file
from fhir_server.settings import Settings

SECRET_FILE = "link-secret"
FORMAT_VERSION = "v1"
SIGNATURE_BYTES = 16
FEED_OWNER_TYPES = ("Practitioner", "Patient")


class LinkAction(StrEnum):
    """What a link lets its holder do."""

    CONFIRM = "confirm"
    CANCEL = "cancel"
    RESCHEDULE = "reschedule"
    BOOK = "book"
    FEED = "feed"


class InvalidLink(Exception):
    """The token was not issued by this server (malformed, tampered, other secret)."""


class ExpiredLink(InvalidLink):
    """The token was genuine but its time is up."""


class LinkSecretError(Exception):
    """The secret file exists but cannot be used safely."""


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a verified token grants: `action` on `subject` (an Appointment id, a proposal's
    Appointment id, or a feed owner `Practitioner/x` / `Patient/y`)."""

    action: LinkAction
    subject: str
    expires: datetime | None


class SignedLinks:
    """The `Links` the content composer puts into messages, and their verifier."""

    def __init__(self, secret: bytes, *, public_url: str, ttl: timedelta,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._secret = secret
        self.public_url = public_url.rstrip("/")
        self._ttl = ttl
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> SignedLinks:
        """Links signed with the configured secret, or with the one kept in the data dir."""
        secret = (settings.link_secret.encode("utf-8") if settings.link_secret
                  else load_or_create_secret(settings.data_dir))
        return cls(secret, public_url=public_origin(settings),
                   ttl=timedelta(hours=settings.link_ttl_h))

    def confirm(self, appointment_id: str) -> str:
        return self._url(LinkAction.CONFIRM, appointment_id)

    def cancel(self, appointment_id: str) -> str:
        return self._url(LinkAction.CANCEL, appointment_id)

    def reschedule(self, appointment_id: str) -> str:
        return self._url(LinkAction.RESCHEDULE, appointment_id)

    def book(self, proposal_id: str) -> str:
        return self._url(LinkAction.BOOK, proposal_id)

    def feed_token(self, owner: str) -> str:
        """The non-expiring token of `Practitioner/x`'s or `Patient/y`'s calendar feed."""
        owner_type, _, owner_id = owner.partition("/")
        if owner_type not in FEED_OWNER_TYPES or not owner_id or "/" in owner_id:
            raise ValueError(f"A calendar feed belongs to a Practitioner or a Patient, "
                             f"not {owner!r}")
        return self.token(LinkAction.FEED, owner, expires=None)

    def feed_url(self, owner: str) -> str:
        """The secret URL of the owner's iCalendar feed."""
        return f"{self.public_url}/calendar/{self.feed_token(owner)}.ics"

    def token(self, action: LinkAction, subject: str, *, expires: datetime | None) -> str:
        """Sign `action` on `subject` until `expires` (None: no expiry)."""
        if "|" in subject:
            raise ValueError("A link subject cannot contain '|'")
        until = str(int(expires.timestamp())) if expires is not None else "-"
        payload = "|".join((FORMAT_VERSION, action.value, subject, until)).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def verify(self, token: str) -> LinkClaim:
        """The claim of a genuine, unexpired token; InvalidLink or ExpiredLink otherwise."""
        encoded, _, signature = token.partition(".")
        try:
            payload, given = _unb64(encoded), _unb64(signature)
        except (binascii.Error, ValueError):
            raise InvalidLink("The link is malformed") from None
        if not hmac.compare_digest(given, self._sign(payload)):
            raise InvalidLink("The link's signature does not match")
        version, action, subject, until = payload.decode("utf-8").split("|")
        if version != FORMAT_VERSION:
            raise InvalidLink(f"Unknown link format {version}")
        expires = None if until == "-" else datetime.fromtimestamp(int(until), UTC)
        if expires is not None and self._clock() >= expires:
            raise ExpiredLink("The link has expired")
        return LinkClaim(LinkAction(action), subject, expires)

    def _url(self, action: LinkAction, subject: str) -> str:
        token = self.token(action, subject, expires=self._clock() + self._ttl)
        return f"{self.public_url}/links/{token}"

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def public_origin(settings: Settings) -> str:
    """Where patients' links point: `public_url`, else the base URL's origin."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    parts = urlsplit(settings.base_url)
    return f"{parts.scheme}://{parts.netloc}"


def load_or_create_secret(data_dir: Path) -> bytes:
    """The secret in `data_dir/link-secret`, generated (0600) the first time."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        write_new_private_file(path, secrets.token_hex(32).encode("ascii"))
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise LinkSecretError(f"{path} is readable by others; run `chmod 600 {path}`")
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise LinkSecretError(f"{path} holds fewer than 32 bytes")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
