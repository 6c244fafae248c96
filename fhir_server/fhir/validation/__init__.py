"""Validation on write: structure, cardinality, required bindings, reference targets, invariants.

Pure: reads only the packaged definitions, once per process.
"""

from fhir_server.fhir.validation.validator import validate_resource

__all__ = ["validate_resource"]
