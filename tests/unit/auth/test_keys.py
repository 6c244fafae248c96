"""Signing keys of the embedded authorization server: created once, kept private, reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_server.auth.keys import (
    KEY_FILES,
    KeyStoreError,
    _write_new_key,
    jwk_thumbprint,
    load_or_create_keys,
)

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_writes_one_private_key_per_algorithm_readable_only_by_owner(
        tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)

    keys_dir = tmp_path / "keys"
    assert _mode(keys_dir) == 0o700
    assert sorted(p.name for p in keys_dir.iterdir()) == sorted(KEY_FILES.values())
    for path in keys_dir.iterdir():
        assert _mode(path) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert {key.alg for key in keys.keys.values()} == {"RS256", "RS384", "ES384"}
    assert keys.signing_key("RS384").private_key.key_size == 2048
    assert isinstance(keys.signing_key("ES384").private_key.curve, ec.SECP384R1)


def test_keys_persist_across_restarts_and_are_never_rewritten(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)
    stored = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}

    second = load_or_create_keys(tmp_path)

    assert second.jwks() == first.jwks()
    assert {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()} == stored


def test_only_a_missing_key_is_generated(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)
    (tmp_path / "keys" / KEY_FILES["ES384"]).unlink()

    second = load_or_create_keys(tmp_path)

    assert second.signing_key("RS384").kid == first.signing_key("RS384").kid
    assert second.signing_key("RS256").kid == first.signing_key("RS256").kid
    assert second.signing_key("ES384").kid != first.signing_key("ES384").kid


def test_jwks_publishes_public_keys_with_kid_alg_and_use_only(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)

    jwks = keys.jwks()

    assert len(jwks["keys"]) == 3
    for jwk in jwks["keys"]:
        assert not PRIVATE_JWK_MEMBERS & jwk.keys()
        assert jwk["use"] == "sig"
        assert jwk["kid"] == jwk_thumbprint(jwk)
        assert jwk["kid"] == keys.signing_key(jwk["alg"]).kid
    assert {(jwk["kty"], jwk["alg"]) for jwk in jwks["keys"]} == {
        ("RSA", "RS256"), ("RSA", "RS384"), ("EC", "ES384")}
    assert jwks["keys"][2]["crv"] == "P-384"


def test_a_key_file_others_can_read_is_refused_until_chmod_600(tmp_path: Path) -> None:
    load_or_create_keys(tmp_path)
    path = tmp_path / "keys" / KEY_FILES["RS384"]
    path.chmod(0o644)

    with pytest.raises(KeyStoreError, match="chmod 600"):
        load_or_create_keys(tmp_path)

    path.chmod(0o600)
    load_or_create_keys(tmp_path)


def test_a_key_of_the_wrong_type_is_refused_and_left_in_place(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    wrong = keys_dir / KEY_FILES["RS384"]
    _write_new_key(wrong, ec.generate_private_key(ec.SECP256R1()))
    content = wrong.read_bytes()

    with pytest.raises(KeyStoreError, match="RSA"):
        load_or_create_keys(tmp_path)
    assert wrong.read_bytes() == content


def test_writing_a_key_never_replaces_a_file_written_first(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    winner = ec.generate_private_key(ec.SECP384R1())
    _write_new_key(path, winner)

    _write_new_key(path, ec.generate_private_key(ec.SECP384R1()))

    stored = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert stored.private_numbers() == winner.private_numbers()
    assert [p.name for p in tmp_path.iterdir()] == ["ec.pem"]


def test_signing_key_names_an_algorithm_we_do_not_sign_with(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path)

    with pytest.raises(KeyError, match="HS256"):
        keys.signing_key("HS256")


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
             "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
             "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD0"
             "8qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8"
             "awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }

    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
