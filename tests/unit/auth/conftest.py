"""Signing keys for the token tests: two independent key sets, made once per module."""

from __future__ import annotations

import pytest

from fhir_server.auth.keys import KeySet, load_or_create_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """The issuer's keys."""
    return load_or_create_keys(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """Somebody else's keys, for tokens the issuer never signed."""
    return load_or_create_keys(tmp_path_factory.mktemp("other"))
