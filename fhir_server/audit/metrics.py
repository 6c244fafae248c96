"""Security monitoring: counters for Prometheus and log lines with stable event names.

Operators alert on `fhir_auth_failures_total` (bad or missing tokens: credential stuffing,
a misconfigured client) and `fhir_authz_denials_total` (valid tokens asking for more than
they may), and on `fhir_audit_events_dropped_total` (audit records the store refused at
shutdown: the audit trail lost them).
The log lines carry the same facts for a SIEM: `event=auth.failed`, `event=authz.denied`.
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import Counter

log = logging.getLogger("fhir_server.security")

AUTH_FAILURES: Final = Counter(
    "fhir_auth_failures_total", "Requests refused for a missing or invalid access token",
    ["reason"])
AUTHZ_DENIALS: Final = Counter(
    "fhir_authz_denials_total", "Authenticated requests the access policy refused",
    ["resource_type", "interaction"])
AUDIT_EVENTS_DROPPED: Final = Counter(
    "fhir_audit_events_dropped_total",
    "Audit records lost because the store refused them at shutdown")


def auth_failed(*, reason: str, client: str | None, path: str) -> None:
    """Count and log one failed authentication (`reason` as one word: `bad_signature`)."""
    reason = reason.replace(" ", "_")
    AUTH_FAILURES.labels(reason=reason).inc()
    log.warning("event=auth.failed reason=%s client=%s path=%s", reason, client or "-", path)


def authz_denied(*, resource_type: str, interaction: str, client_id: str | None,
                 fhir_user: str | None, reason: str) -> None:
    """Count and log one refused authorization."""
    AUTHZ_DENIALS.labels(resource_type=resource_type, interaction=interaction).inc()
    log.warning("event=authz.denied resource_type=%s interaction=%s client_id=%s "
                "fhir_user=%s reason=%r", resource_type, interaction, client_id or "-",
                fhir_user or "-", reason)


def audit_dropped(count: int = 1) -> None:
    """Count AuditEvents that will never be written."""
    AUDIT_EVENTS_DROPPED.inc(count)
