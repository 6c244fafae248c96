"""Use cases, one module each, over the `Store` port; they raise domain errors, never HTTP ones."""
