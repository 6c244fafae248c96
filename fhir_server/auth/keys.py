"""The embedded authorization server's signing keys, generated once and kept in the data dir.

One key per algorithm (RFC 8725 §3.1): an RSA 2048 key for RS256 (ID tokens), another for
RS384 (access tokens) and an EC P-384 key for ES384. Each is a PKCS#8 PEM file, mode 0600,
under `data_dir / "keys"`; its `kid` is the RFC 7638 thumbprint of its public JWK, so it is
stable across restarts without storing it. Existing files are never overwritten; a private
key file readable by group or others is refused (fix with `chmod 600`), as OpenSSH does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

SigningAlgorithm = Literal["RS256", "RS384", "ES384"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_KEY_SIZE = 2048
KEY_FILES: Mapping[SigningAlgorithm, str] = {
    "RS256": "rsa-rs256.pem",
    "RS384": "rsa-rs384.pem",
    "ES384": "ec-p384-es384.pem",
}
# RFC 7638 §3.2: the members that identify a key, per key type.
_THUMBPRINT_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
}


class KeyStoreError(Exception):
    """A key file exists but cannot be used safely; the server must not start with it."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key bound to exactly one algorithm and its published `kid`."""

    kid: str
    alg: SigningAlgorithm
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK, as published in the JWKS."""
        return {**public_jwk_members(self.private_key.public_key()),
                "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass(frozen=True, slots=True)
class KeySet:
    """The signing keys of the embedded authorization server, by algorithm."""

    keys: Mapping[SigningAlgorithm, SigningKey]

    def signing_key(self, alg: str) -> SigningKey:
        """The key that signs with `alg`; a KeyError names an algorithm we do not sign with."""
        for key in self.keys.values():
            if key.alg == alg:
                return key
        raise KeyError(f"no signing key for algorithm {alg!r}")

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set served at the JWKS endpoint (never a private member)."""
        return {"keys": [key.public_jwk() for key in self.keys.values()]}


def load_or_create_keys(data_dir: Path) -> KeySet:
    """Load the signing keys from `data_dir/keys`, generating only those that are missing."""
    keys_dir = data_dir / "keys"
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys: dict[SigningAlgorithm, SigningKey] = {}
    for alg, file_name in KEY_FILES.items():
        path = keys_dir / file_name
        if not path.exists():
            _write_new_key(path, _generate(alg))
        private_key = _read_key(path, alg)
        keys[alg] = SigningKey(kid=jwk_thumbprint(public_jwk_members(private_key.public_key())),
                               alg=alg, private_key=private_key)
    return KeySet(keys=keys)


def public_jwk_members(public_key: PublicKey) -> dict[str, str]:
    """The key-defining JWK members (`kty` and the public numbers) of a public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    return {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url without padding: a `kid` nobody has to store."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"),
                           sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _generate(alg: SigningAlgorithm) -> PrivateKey:
    """A fresh private key of the type `alg` needs."""
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)


def _write_new_key(path: Path, private_key: PrivateKey) -> None:
    """Write a key as 0600 PEM; a concurrent first start keeps the winner's key."""
    write_new_private_file(path, private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def write_new_private_file(path: Path, data: bytes) -> None:
    """Write a secret as a 0600 file, never replacing one another process wrote first."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if the name exists: the first writer wins
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)


def _read_key(path: Path, alg: SigningAlgorithm) -> PrivateKey:
    """Read a stored key after checking its permissions and that it fits `alg`."""
    _refuse_open_permissions(path)
    try:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise KeyStoreError(f"{path} is not an unencrypted PEM private key") from error
    if alg == "ES384":
        if not (isinstance(private_key, ec.EllipticCurvePrivateKey)
                and isinstance(private_key.curve, ec.SECP384R1)):
            raise KeyStoreError(f"{path} must hold an EC P-384 key for ES384")
    elif not (isinstance(private_key, rsa.RSAPrivateKey)
              and private_key.key_size >= RSA_KEY_SIZE):
        raise KeyStoreError(f"{path} must hold an RSA key of at least {RSA_KEY_SIZE} bits")
    return private_key


def _refuse_open_permissions(path: Path) -> None:
    """Refuse a key file others can read or write: a leaked signing key forges every token."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyStoreError(f"{path} has permissions {mode:o}; run `chmod 600 {path}`")
