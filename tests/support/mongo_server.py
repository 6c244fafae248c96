"""Placeholder replaced by the MongoDB test-server fixture (see issue 3)."""
