"""The embedded OAuth 2 authorization server (dev and single-site use; an external IdP is the
production path): authlib's framework-agnostic grants behind a thin Starlette adapter."""
