"""One store, one event loop and one Dispatcher per worker process, opened at process start.

Celery's prefork children open theirs on `worker_process_init` (never in the parent: an open
SQLite connection or Mongo client must not cross a fork); a solo-pool worker opens it on its
first task. Tasks run their coroutines on this loop with `runtime().run(...)`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from celery.signals import worker_process_init, worker_process_shutdown

from fhir_server.notify.channels import build_senders
from fhir_server.notify.content import compose
from fhir_server.notify.dispatch import Dispatcher, DispatchPolicy
from fhir_server.notify.links import SignedLinks
from fhir_server.notify.preferences import plan_channels
from fhir_server.services.wiring import make_context
from fhir_server.settings import Settings, get_settings
from fhir_server.store.factory import open_store_for_url
from fhir_server.store.protocol import Store

log = logging.getLogger("fhir_server.notify")
T = TypeVar("T")


@dataclass(slots=True)
class WorkerRuntime:
    """What this process's tasks share."""

    pid: int
    loop: asyncio.AbstractEventLoop
    store: Store
    dispatcher: Dispatcher
    settings: Settings

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one task's coroutine on the process's loop."""
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


def open_runtime(settings: Settings) -> WorkerRuntime:
    """Open the store and build the dispatcher with every configured channel."""
    loop = asyncio.new_event_loop()
    store = open_store_for_url(settings.store_url, timeout_ms=settings.mongo_timeout_ms)
    loop.run_until_complete(store.open())
    ctx = make_context(store, capability_dir=settings.capability_dir, base_url=settings.base_url)
    policy = DispatchPolicy(lease_for=timedelta(seconds=settings.dispatch_lease_s),
                            max_attempts=settings.dispatch_max_attempts,
                            backoff_base=timedelta(seconds=settings.dispatch_interval_s),
                            default_language=settings.default_language)
    dispatcher = Dispatcher(ctx=ctx, senders=build_senders(settings),
                            links=SignedLinks.from_settings(settings), compose=compose,
                            plan_channels=plan_channels, policy=policy)
    log.info("notify worker %d ready: channels %s", os.getpid(),
             ", ".join(sorted(dispatcher.senders)))
    return WorkerRuntime(os.getpid(), loop, store, dispatcher, settings)


_current: WorkerRuntime | None = None


def runtime() -> WorkerRuntime:
    """This process's runtime, opened on first use after a fork."""
    global _current
    if _current is None or _current.pid != os.getpid():
        _current = open_runtime(get_settings())
    return _current


@worker_process_init.connect
def _open_at_process_start(**_: Any) -> None:
    runtime()


@worker_process_shutdown.connect
def _close_at_process_end(**_: Any) -> None:
    global _current
    if _current is not None and _current.pid == os.getpid():
        _current.close()
        _current = None
