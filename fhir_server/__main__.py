"""`python -m fhir_server` runs the CLI."""

from fhir_server.cli import main

main()
