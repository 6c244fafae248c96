"""The audit trail (IHE BALP AuditEvents, written in the background) and security metrics."""
