"""Changes patients make by link or SMS reply are audited like FHIR updates."""

from __future__ import annotations

from time import time_ns

from starlette.requests import Request

from fhir_server.audit.events import AuditRecord
from fhir_server.audit.writer import AuditWriter
from fhir_server.services.patient_replies import Outcome, Reply

_CHANGES = frozenset({Outcome.CONFIRMED, Outcome.ACKNOWLEDGED, Outcome.CANCELLED,
                      Outcome.RESCHEDULED, Outcome.BOOKED})


def audit_reply(request: Request, reply: Reply, *, channel: str) -> None:
    """Audit a change a patient made by link or SMS as the update of their Appointment,
    with the patient as the agent and `channel` (`patient-link`, `sms-reply`) as client."""
    writer: AuditWriter | None = getattr(request.app.state, "audit_writer", None)
    if writer is None or reply.outcome not in _CHANGES:
        return
    patient = reply.view.patients[0] if reply.view.patients else None
    client = request.scope.get("client")
    writer.submit(AuditRecord(
        interaction="update", status=200, recorded_us=time_ns() // 1000,
        resource_type="Appointment", resource_id=reply.view.id,
        version_id=(reply.view.appointment.get("meta") or {}).get("versionId"),
        outcome_desc=f"{reply.outcome} by the patient", client_id=channel,
        fhir_user=f"Patient/{patient}" if patient else None, patient_id=patient,
        address=client[0] if client else None))
