"""SMART-on-FHIR security kept pure: scopes, roles, the access policy and patient compartments."""
