"""SMART-on-FHIR at the dispatcher: authenticate the bearer token, then authorize the route.

Every FHIR route is declared here with the interaction (or operation) it performs, so
`policy.decide` can judge it before the endpoint runs; a route without a declaration is
refused (and `check_routes` stops the app from starting with one). Public without a token:
`/metadata` and the conformance resources (SearchParameter, OperationDefinition,
StructureDefinition) — they are published definitions a client needs before it can ask for
a token, and they contain no patient data. `/healthz` and `/readyz` live outside `/fhir`.

The decision's restrictions (compartments, seen patients, scope constraints, own schedule)
are applied by `api/narrowing.py`, `api/chain_narrowing.py` (a search's chains) and
`api/operation_narrowing.py`; the `Access` and `Decision` stay on `request.state` for the
endpoints that narrow results (search, includes, Bundles).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Scope

from fhir_server.api import narrowing
from fhir_server.api.chain_narrowing import with_narrowed_chains
from fhir_server.api.operation_narrowing import check_operation
from fhir_server.audit import metrics as security_events
from fhir_server.auth.policy import Access, AccessDenied, Decision, decide
from fhir_server.auth.tokens import (
    TOKEN_KEY_CHARS,
    Claims,
    InvalidToken,
    MissingToken,
    TokenValidator,
)
from fhir_server.fhir.errors import InvalidRequest, NotAllowed
from fhir_server.fhir.resource_types import supports_interaction
from fhir_server.services.conformance import CONFORMANCE_TYPES
from fhir_server.services.context import CallerRights, FhirContext


@dataclass(frozen=True, slots=True)
class RouteAccess:
    """What a route does, for `decide`: an interaction, or `operation` with its name."""

    interaction: str  # a FHIR interaction, "operation", "batch" or "public"
    resource_type: str | None = None  # fixed type; None: the `{resource_type}` path segment
    operation: str | None = None


PUBLIC: Final = RouteAccess("public")


def _operation(name: str, resource_type: str, *methods: str) -> dict[tuple[str, str], RouteAccess]:
    return {(path, method): RouteAccess("operation", resource_type, name)
            for path in _operation_paths(name, resource_type) for method in methods}


def _operation_paths(name: str, resource_type: str) -> tuple[str, ...]:
    paths = {"find-slots": ("/Slot/$find-slots", "/$find-slots"),
             "find": ("/Appointment/$find",),
             "hold": ("/Appointment/$hold",),
             "book": ("/Appointment/$book",),
             "reschedule": ("/Appointment/{id}/$reschedule",),
             "generate-slots": ("/Schedule/{id}/$generate-slots",)}
    return paths[name]


ROUTE_ACCESS: Final[Mapping[tuple[str, str], RouteAccess]] = MappingProxyType({
    ("/metadata", "GET"): PUBLIC,
    **{(path, "GET"): PUBLIC for kind in CONFORMANCE_TYPES
       for path in (f"/{kind}", f"/{kind}/{{id}}")},
    ("/{resource_type}", "GET"): RouteAccess("search-type"),
    ("/{resource_type}/_search", "POST"): RouteAccess("search-type"),
    ("/{resource_type}", "POST"): RouteAccess("create"),
    ("/{resource_type}/{id}", "GET"): RouteAccess("read"),
    ("/{resource_type}/{id}", "PUT"): RouteAccess("update"),
    ("/{resource_type}/{id}", "PATCH"): RouteAccess("patch"),
    ("/{resource_type}/{id}", "DELETE"): RouteAccess("delete"),
    ("/{resource_type}/{id}/_history/{version_id}", "GET"): RouteAccess("vread"),
    ("/{resource_type}/{id}/_history", "GET"): RouteAccess("history-instance"),
    ("/{resource_type}/_history", "GET"): RouteAccess("history-type"),
    # System history shows every type: it needs search on all of them (`*`).
    ("/_history", "GET"): RouteAccess("history-type", "*"),
    ("/", "POST"): RouteAccess("batch"),  # each entry is authorized by api/bundle.py
    **_operation("find-slots", "Slot", "GET", "POST"),
    **_operation("find", "Appointment", "GET", "POST"),
    **_operation("hold", "Appointment", "POST"),
    **_operation("book", "Appointment", "POST"),
    **_operation("reschedule", "Appointment", "POST"),
    **_operation("generate-slots", "Schedule", "GET", "POST"),
})


def check_routes(routes: Iterable[tuple[str, str]]) -> None:
    """Refuse to build an app with a FHIR route nobody declared an access rule for."""
    undeclared = sorted(f"{method} {path}" for path, method in routes
                        if (path, method) not in ROUTE_ACCESS)
    if undeclared:
        raise RuntimeError(f"FHIR routes without an access rule: {', '.join(undeclared)}")


async def guard(request: Request, template: str, method: str) -> None:
    """The router's guard: 401 without a valid token, 403 when the policy refuses."""
    rule = ROUTE_ACCESS.get((template, method))
    if rule is None:
        raise AccessDenied(f"No access rule covers {method} {template}")
    if rule.interaction == "public":
        return
    try:
        caller = await authenticate(request)
    except (MissingToken, InvalidToken) as refused:
        security_events.auth_failed(reason=getattr(refused, "reason", "missing"),
                                    client=_client_address(request), path=request.url.path)
        raise
    if rule.interaction == "batch":
        return
    resource_type = rule.resource_type or request.scope["path_params"]["resource_type"]
    access = caller.access
    key = (rule.interaction, resource_type, rule.operation)
    ruling = caller.rulings.get(key) or caller.rule(rule, resource_type, key)
    decision = ruling.decision
    try:
        if not decision.allowed:
            raise AccessDenied(decision.reason)
        state = request.scope["state"]
        state["decision"] = decision
        if ruling.narrowed:
            await narrowing.check_request(request, rule.interaction, resource_type, access,
                                          decision)
        if rule.operation is not None:
            await check_operation(request, rule.operation, access, decision)
        elif rule.interaction == "search-type":
            state["decision"] = await with_narrowed_chains(request, access, decision,
                                                           resource_type)
    except AccessDenied as denied:
        security_events.authz_denied(resource_type=resource_type,
                                     interaction=rule.operation or rule.interaction,
                                     client_id=access.client_id, fhir_user=access.fhir_user,
                                     reason=str(denied))
        raise


def _client_address(request: Request) -> str | None:
    client = request.scope.get("client")
    return client[0] if client else None


CALLER_CACHE_SIZE = 4096
RULINGS_PER_CALLER = 64  # routes x types a client uses; beyond that, decide without keeping


class Ruling(NamedTuple):
    """The policy's decision on one route for one type, and whether `narrowing` has anything
    to check for it (most reads by unconfined callers: nothing)."""

    decision: Decision
    narrowed: bool


@dataclass(slots=True)
class Caller:
    """What a valid token allows, kept per token so that a repeat request costs one lookup:
    its `Access`, the app's context with its rights, and the rulings made so far (they
    depend only on the immutable Access and the route)."""

    claims: Claims
    access: Access
    base: FhirContext  # the app's context `fhir` was derived from
    fhir: FhirContext
    rulings: dict[tuple[str, str, str | None], Ruling]

    def rule(self, rule: RouteAccess, resource_type: str,
             key: tuple[str, str, str | None]) -> Ruling:
        """Decide `rule` for `resource_type` (405 for an interaction the type does not
        offer) and remember the ruling under `key` for the next request."""
        if rule.operation is None and not supports_interaction(resource_type, rule.interaction):
            raise NotAllowed(f"{resource_type} does not support {rule.interaction} through the "
                             "API", code="not-supported")
        decision = decide(self.access, interaction=rule.interaction,
                          resource_type=resource_type, operation=rule.operation)
        ruling = Ruling(decision, narrowing.needs_check(rule.interaction, resource_type,
                                                        self.access, decision))
        if len(self.rulings) < RULINGS_PER_CALLER:
            self.rulings[key] = ruling
        return ruling


async def authenticate(request: Request) -> Caller:
    """The caller of a valid bearer token; its Access and context go on `request.state`."""
    token = _bearer_token(request.scope)
    app_state = app_values(request)
    validator: TokenValidator = app_state["token_validator"]
    claims = validator.remembered(token)
    if claims is None:
        if app_state["token_validation_blocks"]:  # an external IdP's keys may be fetched
            claims = await run_in_threadpool(validator.validate, token)
        else:
            claims = validator.validate(token)
    fhir, callers = app_state["fhir"], app_state["access_cache"]
    # Keyed as the validator keys it; a hit is exact, since `claims` is the very object the
    # validator holds for this token and no other.
    caller = callers.get(token[-TOKEN_KEY_CHARS:])
    if caller is None or caller.claims is not claims or caller.base is not fhir:
        caller = _new_caller(callers, token, claims, fhir)
    state = request.scope.setdefault("state", {})  # what `request.state` wraps
    state["access"] = caller.access
    state["fhir"] = caller.fhir
    return caller


def app_values(request: Request) -> dict[str, Any]:
    """What the app keeps on `app.state`, as the plain dict behind it: each `app.state.x`
    first fails a normal attribute lookup (raising and catching an AttributeError) and
    several of those per request cost more than the lookups themselves."""
    values: dict[str, Any] = request.scope["app"].state._state  # noqa: SLF001
    return values


def _bearer_token(scope: Scope) -> str:
    """The token of the `Authorization: Bearer` header, read from the raw ASGI headers."""
    header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value
            break
    if not header:
        raise MissingToken("This endpoint needs an access token: "
                           "send 'Authorization: Bearer <token>'")
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("malformed")
    return token


def _new_caller(cache: OrderedDict[str, Caller], token: str, claims: Claims,
                base: FhirContext) -> Caller:
    """A caller for newly verified claims, remembered while the validator hands back the same
    claims (parsing scopes and role on every request cost a quarter of a read)."""
    try:
        access = Access.from_claims(claims.raw)
    except InvalidRequest:  # an unknown role or a malformed resource scope
        raise InvalidToken("malformed claims") from None
    caller = Caller(claims, access, base, with_caller_rights(base, access), {})
    cache[token[-TOKEN_KEY_CHARS:]] = caller
    if len(cache) > CALLER_CACHE_SIZE:
        cache.popitem(last=False)
    return caller


def with_caller_rights(ctx: FhirContext, access: Access) -> FhirContext:
    """The app's context carrying what the caller's role may override in booking."""
    role = access.capabilities
    if role is None or not (role.may_book_emergency or role.may_overbook):
        return ctx
    return dataclasses.replace(ctx, caller=CallerRights(
        may_use_emergency=role.may_book_emergency, may_overbook=role.may_overbook))


def access_of(request: Request) -> Access:
    """The authenticated caller (set by the guard)."""
    access: Access = request.state.access
    return access


def decision_of(request: Request) -> Decision | None:
    """The guard's decision for this request, if the route was authorized as one."""
    return getattr(request.state, "decision", None)
