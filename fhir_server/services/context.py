"""What every use case needs: the store, the search parameters and the server's base URL."""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.fhir.search.parameters import SearchParameterRegistry
from fhir_server.store.protocol import Store


@dataclass(frozen=True, slots=True)
class FhirContext:
    """Collaborators passed to services, built once at start-up."""

    store: Store
    registry: SearchParameterRegistry
    base_url: str
