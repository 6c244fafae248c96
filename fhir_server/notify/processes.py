"""Running the dispatcher: a Celery worker, beat, and both as children of `serve` by default.

A worker with `--concurrency 1` runs tasks in its own process (solo pool) and overlaps the
channel I/O of each batch on its event loop; more concurrency forks that many children.
Scale out with more worker processes (or containers); run exactly one beat.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fhir_server.settings import Settings

log = logging.getLogger("fhir_server.notify")

STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


def run_worker(settings: Settings, *, concurrency: int, metrics_port: int | None) -> None:
    """Run a Celery worker in this process until it is stopped."""
    from prometheus_client import start_http_server

    from fhir_server.notify.celery_app import app

    if metrics_port:
        start_http_server(metrics_port)
    pool = ["--pool", "solo"] if concurrency == 1 else ["--concurrency", str(concurrency)]
    app.start(["worker", "--loglevel", settings.log_level, *pool,
               "--without-gossip", "--without-mingle", "--prefetch-multiplier", "4"])


def run_beat(settings: Settings) -> None:
    """Run Celery beat in this process: one per deployment, or messages are scanned twice."""
    from fhir_server.notify.celery_app import app

    app.start(["beat", "--loglevel", settings.log_level])


def runs_embedded(settings: Settings) -> bool:
    """Whether `serve` starts a worker and beat: by default only with the filesystem broker
    (a configured broker means separate processes); `FHIR_SCHEDULER_EMBEDDED_WORKER` decides
    when set."""
    if "embedded_worker" in settings.model_fields_set:
        return settings.embedded_worker
    return settings.embedded_worker and not settings.broker_url


def _die_with_parent() -> None:
    """In the child: get SIGTERM when `serve` dies, however it dies (uvicorn re-raises the
    SIGTERM it handled, so `serve` never reaches its own cleanup). Linux only."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def embedded_dispatch(settings: Settings) -> Iterator[None]:
    """Run a worker and beat as child processes while the block runs (if `runs_embedded`)."""
    if not runs_embedded(settings):
        yield
        return
    command = [sys.executable, "-m", "fhir_server"]
    children = [subprocess.Popen([*command, name], preexec_fn=_die_with_parent)
                for name in ("worker", "beat")]
    log.info("reminders: worker pid %d and beat pid %d started", *(c.pid for c in children))
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
