"""Demo data a fresh server can be seeded with (`serve --seed-if-empty`)."""

from fhir_server.seed.demo import demo_resources

__all__ = ["demo_resources"]
