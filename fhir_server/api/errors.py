"""The one place that maps domain errors to HTTP statuses and OperationOutcome bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fhir_server.api.responses import fhir_json
from fhir_server.auth.policy import AccessDenied
from fhir_server.auth.tokens import InvalidToken, KeySetUnavailable, MissingToken
from fhir_server.fhir import errors
from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.fhir.outcome import operation_outcome

log = logging.getLogger("fhir_server.api")

STATUS_BY_ERROR: tuple[tuple[type[FhirError], int], ...] = (
    (MissingToken, 401),
    (InvalidToken, 401),
    (AccessDenied, 403),
    (KeySetUnavailable, 503),
    (errors.UnknownSearchParameter, 400),
    (errors.InvalidRequest, 400),
    (errors.UnsupportedResourceType, 404),
    (errors.ResourceNotFound, 404),
    (errors.NotAllowed, 405),
    (errors.NotAcceptable, 406),
    (errors.Conflict, 409),
    (errors.ResourceGone, 410),
    (errors.VersionConflict, 412),
    (errors.MultipleMatches, 412),
    (errors.UnsupportedMediaType, 415),
    (errors.ValidationFailed, 422),
    (errors.BusinessRuleViolation, 422),
    (errors.StoreUnavailable, 503),
)

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 410: "Gone",
           412: "Precondition Failed", 415: "Unsupported Media Type",
           422: "Unprocessable Entity", 500: "Internal Server Error", 503: "Service Unavailable"}


def status_for(error: FhirError) -> int:
    """The HTTP status of a domain error (500 for an unmapped one)."""
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 500


def status_line(status: int) -> str:
    """`404 Not Found`, as Bundle.entry.response.status wants it."""
    return f"{status} {REASONS.get(status, '')}".strip()


def error_response(error: FhirError) -> Response:
    """The OperationOutcome response for a domain error (401s carry the Bearer challenge)."""
    return fhir_json(operation_outcome(error.issues), status=status_for(error),
                     headers=_challenge(error))


def _challenge(error: FhirError) -> dict[str, str] | None:
    """RFC 6750 §3: `WWW-Authenticate: Bearer`, with `invalid_token` when one was sent."""
    if isinstance(error, MissingToken):
        return {"WWW-Authenticate": 'Bearer realm="fhir"'}
    if isinstance(error, InvalidToken):
        return {"WWW-Authenticate": 'Bearer realm="fhir", error="invalid_token", '
                                    f'error_description="{error.reason}"'}
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Every failure leaves as an OperationOutcome; unexpected ones are logged, not leaked."""

    async def on_fhir_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, FhirError)
        return error_response(error)

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "not-found", 405: "not-supported"}.get(error.status_code, "processing")
        detail = error.detail if error.status_code != 404 else f"No route for {request.url.path}"
        return fhir_json(operation_outcome([Issue(code=code, diagnostics=str(detail))]),
                         status=error.status_code)

    async def on_request_validation(request: Request, error: Exception) -> Response:
        return fhir_json(operation_outcome([Issue(code="invalid", diagnostics=str(error))]),
                         status=400)

    async def on_unexpected(request: Request, error: Exception) -> Response:
        request_id = getattr(request.state, "request_id", "-")
        log.exception("unhandled error request_id=%s %s %s", request_id, request.method,
                      request.url.path)
        issue = Issue(code="exception", severity="fatal",
                      diagnostics=f"Internal server error (request id {request_id})")
        # Starlette answers unhandled errors outside every middleware, so the request-id
        # middleware never sees this response: echo the id here.
        return fhir_json(operation_outcome([issue]), status=500,
                         headers={"X-Request-ID": request_id})

    app.add_exception_handler(FhirError, on_fhir_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(Exception, on_unexpected)
