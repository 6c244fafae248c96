"""Read FHIR request details: JSON bodies, Prefer, If-Match, `_format` and query parameters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from fhir_server.fhir.errors import InvalidRequest, NotAcceptable, UnsupportedMediaType

JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
PATCH_TYPES = frozenset({"application/json-patch+json"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json",
                          "application/json+fhir"})
ReturnPreference = Literal["minimal", "representation", "OperationOutcome"]


def utc_now() -> datetime:
    """The request's clock reading; services take it as an argument."""
    return datetime.now(UTC)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


async def json_body(request: Request, *, accepted: frozenset[str] = JSON_TYPES) -> Any:
    """The parsed body, or 415 for another media type and 400 for malformed JSON."""
    content_type = _media_type(request.headers.get("content-type", "application/fhir+json"))
    if content_type not in accepted:
        raise UnsupportedMediaType(f"Content-Type '{content_type}' is not supported; "
                                   f"send {' or '.join(sorted(accepted))}")
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"Malformed JSON: {error}", code="structure") from error


def check_format(request: Request) -> None:
    """Refuse `_format` or `Accept` values that ask only for XML or another non-JSON format."""
    has_format = b"_format" in request.scope.get("query_string", b"")
    requested = request.query_params.get("_format") if has_format else None
    if requested is not None and requested.lower() not in JSON_FORMATS:
        raise NotAcceptable(f"_format '{requested}' is not supported; this server speaks JSON")
    accept = request.headers.get("accept")
    if accept:
        types = {_media_type(part) for part in accept.split(",")}
        if not types & (JSON_FORMATS | {"*/*", "application/*"}):
            raise NotAcceptable(f"Accept '{accept}' cannot be satisfied; this server speaks JSON")


def prefer(request: Request, name: str) -> str | None:
    """One token of the `Prefer` header, e.g. `return` or `handling`."""
    for part in request.headers.get("prefer", "").split(";"):
        for item in part.split(","):
            key, _, value = item.strip().partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"')
    return None


def return_preference(request: Request) -> ReturnPreference:
    """`Prefer: return=...`, representation by default."""
    value = prefer(request, "return")
    if value in ("minimal", "OperationOutcome"):
        return value  # type: ignore[return-value]
    return "representation"


def is_lenient(request: Request) -> bool:
    """`Prefer: handling=lenient` lets unknown search parameters be ignored."""
    return prefer(request, "handling") == "lenient"


def if_match_version(request: Request) -> int | None:
    """The version an `If-Match: W/"n"` header expects, or None."""
    value = request.headers.get("if-match")
    if value is None:
        return None
    digits = value.strip().removeprefix("W/").strip('"')
    if not digits.isdigit():
        raise InvalidRequest(f"If-Match '{value}' is not a version ETag such as W/\"3\"")
    return int(digits)


async def search_params(request: Request) -> list[tuple[str, str]]:
    """Query parameters, plus the form fields of `POST _search`.

    The form is decoded here rather than with `request.form()`, which needs the optional
    python-multipart package only to read a body that is always urlencoded.
    """
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        content_type = _media_type(request.headers.get("content-type", ""))
        if content_type not in ("application/x-www-form-urlencoded", ""):
            raise UnsupportedMediaType("POST _search takes application/x-www-form-urlencoded")
        body = (await request.body()).decode("utf-8", errors="replace")
        request.state.search_form = body  # the audit trail records the query as sent
        params.extend(parse_qsl(body, keep_blank_values=True))
    return params
