"""The client registry of the embedded authorization server: one JSON file, mode 0600.

`data_dir/auth/clients.json` holds each registered client: its id, an scrypt hash of its
secret (never the secret), its public JWKS (for `private_key_jwt`), redirect URIs, the scopes
it may be granted and the role its backend tokens carry. A client with neither secret nor
JWKS is a public SMART app (`token_endpoint_auth_method` `none`, PKCE only) and needs a
redirect URI. It is meant for development and a single site; a deployment with many clients
uses an external IdP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fhir_server.auth.roles import definition_of
from fhir_server.auth.scopes import parse_scopes
from fhir_server.auth.server.json_records import JsonRecords
from fhir_server.auth.server.scope_grant import within_registration
from fhir_server.fhir.errors import InvalidRequest

# Backend services act for an organisation, not a person: `staff` books for anyone, sends
# reminders and handles cancellations, but manages no availability and reads no audit trail.
DEFAULT_BACKEND_ROLE = "staff"
BACKEND_GRANT_TYPES = ("client_credentials",)
APP_GRANT_TYPES = ("authorization_code", "refresh_token")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class ClientRegistryError(Exception):
    """A registration that cannot be stored (duplicate id, bad scope, role or JWKS)."""


def hash_secret(secret: str) -> str:
    """`scrypt$<salt>$<hash>` (base64url): what the registry stores instead of the secret."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, **_SCRYPT)
    return "scrypt$" + "$".join(base64.urlsafe_b64encode(part).decode() for part in (salt, digest))


def secret_matches(secret: str, stored: str) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    scheme, _, rest = stored.partition("$")
    salt_b64, _, digest_b64 = rest.partition("$")
    if scheme != "scrypt" or not salt_b64 or not digest_b64:
        return False
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=base64.urlsafe_b64decode(salt_b64),
                            **_SCRYPT)
    return hmac.compare_digest(digest, base64.urlsafe_b64decode(digest_b64))


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A registered client, as authlib's `ClientMixin` sees it."""

    client_id: str
    scopes: tuple[str, ...]
    role: str = DEFAULT_BACKEND_ROLE
    secret_hash: str | None = None
    jwks: Mapping[str, Any] | None = None
    redirect_uris: tuple[str, ...] = field(default=())

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """The token-endpoint authentication methods this client's credentials allow."""
        methods = (*(("client_secret_basic",) if self.secret_hash else ()),
                   *(("private_key_jwt",) if self.jwks else ()))
        return methods or ("none",)

    @property
    def is_public(self) -> bool:
        """A SMART app that holds no credential (it proves itself with PKCE alone)."""
        return self.auth_methods == ("none",)

    # authlib.oauth2.rfc6749.ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(within_registration(scope.split(), self.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.redirect_uris)

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type in APP_GRANT_TYPES:
            return bool(self.redirect_uris)
        return grant_type in BACKEND_GRANT_TYPES and not self.is_public


def new_client(*, client_id: str, scope: str, secret: str | None = None,
               jwks: Mapping[str, Any] | None = None, redirect_uris: Sequence[str] = (),
               role: str = DEFAULT_BACKEND_ROLE) -> ClientRecord:
    """A checked registration: known role, parseable scopes, public keys only, and a
    credential unless it is a public app with a redirect URI."""
    if not client_id or any(c.isspace() or c == ":" for c in client_id):
        raise ClientRegistryError(f"invalid client id {client_id!r}")
    try:
        definition_of(role)
        parse_scopes(scope)
    except (InvalidRequest, KeyError, ValueError) as error:
        raise ClientRegistryError(str(error)) from None
    if not scope.split():
        raise ClientRegistryError("a client needs at least one scope")
    if secret is None and jwks is None and not redirect_uris:
        raise ClientRegistryError("a client needs a secret or a JWKS, or a redirect URI as a "
                                  "public SMART app")
    for uri in redirect_uris:
        if not uri.startswith(("https://", "http://")) or "#" in uri:
            raise ClientRegistryError(f"redirect URI {uri!r} must be an absolute http(s) URL "
                                      "without a fragment")
    if jwks is not None:
        _check_public_jwks(jwks)
    return ClientRecord(client_id=client_id, scopes=tuple(scope.split()), role=role,
                        secret_hash=hash_secret(secret) if secret else None,
                        jwks=jwks, redirect_uris=tuple(redirect_uris))


def _check_public_jwks(jwks: Mapping[str, Any]) -> None:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise ClientRegistryError("the JWKS needs a non-empty 'keys' list")
    for key in keys:
        if not isinstance(key, Mapping) or key.get("kty") not in ("RSA", "EC"):
            raise ClientRegistryError("JWKS keys must be RSA or EC keys")
        if "d" in key:
            raise ClientRegistryError("the JWKS holds a private key: register the public half")


class ClientRegistry:
    """The registered clients, read from and written to `path` (created 0600)."""

    def __init__(self, path: Path) -> None:
        self._records = JsonRecords(path, section="clients", key=_client_id, load=_record,
                                    dump=_entry)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ClientRegistry:
        return cls(data_dir / "auth" / "clients.json")

    def get(self, client_id: str) -> ClientRecord | None:
        """The client with this id, re-reading the file when `clients add` changed it."""
        return self._records.get(client_id)

    def all(self) -> list[ClientRecord]:
        return self._records.all()

    def add(self, client: ClientRecord) -> None:
        """Register a new client; an existing id is refused rather than overwritten."""
        self._records.add(client, exists=lambda id: ClientRegistryError(
            f"client {id!r} is already registered"))


def _client_id(client: ClientRecord) -> str:
    return client.client_id


def _entry(client: ClientRecord) -> dict[str, Any]:
    entry = asdict(client)
    entry["jwks"] = dict(client.jwks) if client.jwks is not None else None
    return entry


def _record(entry: Mapping[str, Any]) -> ClientRecord:
    return ClientRecord(client_id=entry["client_id"], scopes=tuple(entry["scopes"]),
                        role=entry.get("role", DEFAULT_BACKEND_ROLE),
                        secret_hash=entry.get("secret_hash"), jwks=entry.get("jwks"),
                        redirect_uris=tuple(entry.get("redirect_uris", ())))
