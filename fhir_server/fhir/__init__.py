"""Pure FHIR knowledge: resource types, validation, search parameters, bundles, outcomes."""
