"""Group commit for concurrent deliveries: the outcomes finishing while the store is busy
share the next transaction, so a burst pays one commit per wave instead of one per message,
and nothing waits for a slower send to finish before its own outcome is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fhir_server.services.context import FhirContext
from fhir_server.services.outbox_leases import commit_groups
from fhir_server.store.protocol import VersionWrite


class GroupCommit:
    """Commits write groups, each atomically, batching those that arrive together."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Sequence[VersionWrite], asyncio.Future[bool]]] = []
        self._flushing = False

    async def commit(self, ctx: FhirContext, writes: Sequence[VersionWrite]) -> bool:
        """Commit `writes` atomically with whatever else is waiting; False on a lost race."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((writes, done))
        if not self._flushing:
            self._flushing = True
            try:
                await asyncio.sleep(0)  # let the deliveries finishing alongside join in
                while self._waiting:
                    await self._flush(ctx)
            finally:
                self._flushing = False
        return await done

    async def _flush(self, ctx: FhirContext) -> None:
        batch, self._waiting = self._waiting, []
        try:
            committed = await commit_groups(ctx, [writes for writes, _ in batch],
                                            per_commit=len(batch))
        except Exception as error:
            for _, done in batch:
                done.set_exception(error)
            return
        for (_, done), ok in zip(batch, committed, strict=True):
            done.set_result(ok)
