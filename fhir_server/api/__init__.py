"""HTTP edge: FastAPI routers that parse requests, call services and render FHIR."""
