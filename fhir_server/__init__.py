"""fhir-scheduler: a FHIR R4 appointment scheduling server."""

__version__ = "0.1.0"
