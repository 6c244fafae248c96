"""Test-wide fixtures shared by unit, integration and e2e tests."""

pytest_plugins = ["tests.support.mongo_server"]
