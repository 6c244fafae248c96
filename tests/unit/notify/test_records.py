"""The per-worker directory cache: values (absent ones too) are reused until they are
`ttl_s` old, and the oldest entries go beyond the limit."""

from __future__ import annotations

from typing import Any

from fhir_server.notify.records import DirectoryCache


class Loader:
    """Counts loads and returns the count, so a test sees which value was reused."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        return None if self.calls == 1 else self.calls


async def test_a_value_and_an_absence_are_reused_within_the_ttl() -> None:
    cache, load = DirectoryCache(ttl_s=60), Loader()

    assert [await cache.get("Location/l1", load) for _ in range(3)] == [None, None, None]
    assert load.calls == 1


async def test_an_expired_value_is_loaded_again() -> None:
    cache, load = DirectoryCache(ttl_s=0), Loader()

    assert [await cache.get("Location/l1", load) for _ in range(2)] == [None, 2]


async def test_the_oldest_entries_go_beyond_the_limit() -> None:
    cache, load = DirectoryCache(ttl_s=60, limit=2), Loader()
    for key in ("a", "b", "c"):
        await cache.get(key, load)

    await cache.get("a", load)

    assert load.calls == 4  # "a" had been dropped
