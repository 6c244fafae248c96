"""Fixtures for the pure search layer: one registry with the packaged and custom parameters."""

from pathlib import Path

import pytest

from fhir_server.fhir.search.parameters import SearchParameterRegistry, load_registry

CAPABILITY_DIR = Path(__file__).resolve().parents[3] / "capability"


@pytest.fixture(scope="session")
def registry() -> SearchParameterRegistry:
    """The registry the server builds at start-up (R4 definitions plus `capability/`)."""
    return load_registry(CAPABILITY_DIR)
