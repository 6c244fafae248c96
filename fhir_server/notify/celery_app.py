"""The Celery app that sends reminders: broker, beat schedule, and task settings.

Broker: `FHIR_SCHEDULER_BROKER_URL` (Redis in production, RabbitMQ works too); empty means
kombu's filesystem transport under `data_dir/broker`, which needs no server and moves ~800
tasks/s with a 50 ms polling interval. No result backend: the store records every outcome.
Beat sends `scan` every `dispatch_interval_s` and `reconcile` every `RECONCILE_EVERY_S`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from fhir_server.settings import Settings, get_settings

SCAN_TASK = "fhir_server.notify.scan"
DELIVER_TASK = "fhir_server.notify.deliver"
RECONCILE_TASK = "fhir_server.notify.reconcile"
RECONCILE_EVERY_S = 30.0


def broker_of(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL and its transport options (the filesystem folders by default)."""
    if settings.broker_url:
        return settings.broker_url, {}
    root = Path(settings.data_dir) / "broker"
    folders = {name: root / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]), "store_processed": False,
        "control_folder": str(folders["control"]), "polling_interval": 0.05}


def make_celery(settings: Settings) -> Celery:
    """The app for `settings`; tasks are registered by importing `notify.tasks`."""
    broker, options = broker_of(settings)
    app = Celery("fhir_server", broker=broker, include=["fhir_server.notify.tasks"])
    interval = settings.dispatch_interval_s
    app.conf.update(
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        beat_schedule_filename=str(Path(settings.data_dir) / "celerybeat-schedule"),
        beat_schedule={
            # A scan nobody picked up within its interval is superseded by the next one.
            "scan": {"task": SCAN_TASK, "schedule": interval,
                     "options": {"expires": max(interval * 2, 1.0)}},
            "reconcile": {"task": RECONCILE_TASK,
                          "schedule": max(RECONCILE_EVERY_S, interval),
                          "options": {"expires": RECONCILE_EVERY_S}},
        },
    )
    return app


app = make_celery(get_settings())
