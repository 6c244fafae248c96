"""Delivery monitoring: Prometheus counters and log lines with stable event names.

Operators alert on `fhir_notify_failed_total` (messages given up after the last retry; each is a
`not-done` Communication and one `event=notify.delivery_failed` log line) and watch
`fhir_notify_lag_seconds` (due to accepted by the channel). A worker serves them on
`fhir-scheduler worker --metrics-port`.
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import Counter, Histogram

log = logging.getLogger("fhir_server.notify")

SENT: Final = Counter("fhir_notify_sent_total", "Messages a channel accepted",
                      ["kind", "channel"])
FAILED: Final = Counter("fhir_notify_failed_total",
                        "Messages given up after the last attempt (Communication not-done)",
                        ["kind"])
RETRIED: Final = Counter("fhir_notify_retried_total",
                         "Attempts that failed transiently and were re-armed with back-off",
                         ["kind"])
LAG: Final = Histogram("fhir_notify_lag_seconds", "From a message's due time to its sending",
                       buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600))


def sent(*, kind: str, channel: str, lag_s: float) -> None:
    """Count one accepted message and its lag."""
    SENT.labels(kind=kind, channel=channel).inc()
    LAG.observe(max(lag_s, 0.0))


def retried(*, kind: str, request_id: str, attempt: int, reason: str) -> None:
    """Count and log one transient failure that will be retried."""
    RETRIED.labels(kind=kind).inc()
    log.info("event=notify.retry request=CommunicationRequest/%s attempt=%d reason=%r",
             request_id, attempt, reason)


def delivery_failed(*, kind: str, request_id: str, attempts: int, reason: str) -> None:
    """Count and log one message given up."""
    FAILED.labels(kind=kind).inc()
    log.warning("event=notify.delivery_failed request=CommunicationRequest/%s kind=%s "
                "attempts=%d reason=%r", request_id, kind, attempts, reason)
