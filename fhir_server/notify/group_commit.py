"""Group commit for concurrent deliveries: a burst pays one commit per batch of outcomes
instead of one per message (a SQLite commit costs milliseconds: WAL pages, checkpoints).

A commit waits until every delivery that may still record (`member`) has asked to, or
`WINDOW_S` passed, then commits all waiting groups in one transaction, each group atomically.
The window bounds how long a sent message stays unrecorded because of a slower neighbour."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from fhir_server.services.context import FhirContext
from fhir_server.services.outbox_leases import commit_groups
from fhir_server.store.protocol import VersionWrite

WINDOW_S = 0.05


class GroupCommit:
    """Commits write groups from the deliveries running on one event loop."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._members = 0
        self._waiting: list[tuple[Sequence[VersionWrite], asyncio.Future[bool]]] = []
        self._all_waiting = asyncio.Event()
        self._flushing = False

    @contextmanager
    def member(self) -> Iterator[None]:
        """While the block runs, commits wait (up to the window) for it to record."""
        self._members += 1
        try:
            yield
        finally:
            self._members -= 1
            self._check()

    async def commit(self, ctx: FhirContext, writes: Sequence[VersionWrite]) -> bool:
        """Commit `writes` atomically along with the others waiting; False on a lost race."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((writes, done))
        self._check()
        if not self._flushing:
            self._flushing = True
            try:
                while self._waiting:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._all_waiting.wait(), self._window_s)
                    await self._flush(ctx)
            finally:
                self._flushing = False
        return await done

    def _check(self) -> None:
        if self._waiting and len(self._waiting) >= self._members:
            self._all_waiting.set()

    async def _flush(self, ctx: FhirContext) -> None:
        batch, self._waiting = self._waiting, []
        self._all_waiting.clear()
        try:
            committed = await commit_groups(ctx, [writes for writes, _ in batch],
                                            per_commit=len(batch))
        except Exception as error:
            for _, done in batch:
                done.set_exception(error)
            return
        for (_, done), ok in zip(batch, committed, strict=True):
            done.set_result(ok)
