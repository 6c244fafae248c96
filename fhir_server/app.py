"""The ASGI application: wiring of settings, store, search registry and routers."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from fhir_server import __version__
from fhir_server.api import (
    appointment_book,
    appointment_find,
    appointment_hold,
    appointment_reschedule,
    bundle,
    find_slots,
    generate_slots,
    health,
    history,
    instance,
    metadata,
    monitoring,
    search,
)
from fhir_server.api.audit_trail import admitting, recording
from fhir_server.api.errors import install_error_handlers
from fhir_server.api.middleware import RequestIdMiddleware
from fhir_server.api.patient_web import install_patient_web
from fhir_server.api.routing import FhirRouter
from fhir_server.api.security import check_routes, guard
from fhir_server.audit.writer import AuditWriter
from fhir_server.auth.server import web as auth_web
from fhir_server.auth.server.discovery import oauth_uris, smart_configuration
from fhir_server.auth.setup import build_authorization_server, build_token_validator
from fhir_server.fhir.capability import build_capability_statement
from fhir_server.fhir.resource_types import INTERACTIONS_BY_TYPE, SUPPORTED_TYPES
from fhir_server.services.booking_recovery import recover
from fhir_server.services.conformance import load_conformance
from fhir_server.services.context import FhirContext
from fhir_server.services.wiring import make_context
from fhir_server.settings import Settings, get_settings
from fhir_server.store.factory import open_store_for_url
from fhir_server.store.protocol import Store

log = logging.getLogger("fhir_server")

TYPE_INTERACTIONS = INTERACTIONS_BY_TYPE  # AuditEvent: read and search only
SYSTEM_INTERACTIONS = ("batch", "transaction", "history-system")


def fhir_router(app_state: dict[str, Any] | None = None, *, secured: bool = True) -> FhirRouter:
    """Every FHIR route, each authorized by the guard before its endpoint runs and audited
    to the audit writer in `app_state` (the dict behind the app's `app.state`) after it; the
    router tries literal paths before `{resource_type}/{id}`. `secured=False` (neither guard
    nor audit) exists only for the security-overhead benchmark."""
    if not secured:
        router = FhirRouter()
    elif app_state is None:
        raise ValueError("a secured FHIR router audits to its app's state: pass app_state")
    else:
        router = FhirRouter(guard=admitting(guard, app_state), observer=recording(app_state))
    for module in (metadata, bundle, history, search, generate_slots, find_slots,
                   appointment_find, appointment_hold, appointment_book, appointment_reschedule,
                   instance):
        router.include(module.router)
    check_routes(router.routes())
    return router


async def _bundle_at_base(request: Request) -> Response:
    """`POST [base]` without the trailing slash: guarded and audited like `POST [base]/`."""
    router: FhirRouter = request.app.state.fhir_router
    return await router.respond(request, "/", bundle.process_bundle)


def _freeze_startup_objects() -> None:
    """Move what start-up built (modules, routes, registries: alive as long as the process)
    out of the cyclic collector's sight, so its full collections scan only what requests
    leave; once per process (tests build many apps, whose objects must stay collectable)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """Build the app; `store` lets tests hand in an adapter (it is opened and closed here)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = store or open_store_for_url(settings.store_url,
                                             timeout_ms=settings.mongo_timeout_ms)
        _start_auth(app, settings)
        app.state.access_cache = OrderedDict()
        # An external IdP's keys are fetched over the network: validate off the event loop.
        app.state.token_validation_blocks = settings.auth_mode == "external"
        await active.open()
        ctx = make_context(active, capability_dir=settings.capability_dir,
                           base_url=settings.base_url)
        registry = ctx.registry
        conformance = load_conformance(settings.capability_dir, settings.profiles_dir)
        app.state.fhir = ctx
        app.state.audit_writer = AuditWriter(
            active.audit_log, flush_interval_s=settings.audit_flush_interval_s)
        app.state.audit_writer.start()
        app.state.conformance = conformance
        app.state.capability_statement = orjson.dumps(build_capability_statement(
            template=conformance.capability_template, registry=registry,
            resource_types=SUPPORTED_TYPES, type_interactions=TYPE_INTERACTIONS,
            system_interactions=SYSTEM_INTERACTIONS,
            operations=list(conformance.all_of("OperationDefinition")),
            base_url=settings.base_url, version=__version__,
            date=datetime.now(UTC).date().isoformat(),
            oauth_uris=oauth_uris(app.state.auth_server.endpoints)
            if app.state.auth_server else None))
        log.info("fhir-scheduler %s serving %s on %s", __version__, settings.base_url,
                 settings.store_url.split("@")[-1])
        repair = asyncio.create_task(_recover_periodically(ctx, settings.recovery_interval_s))
        _freeze_startup_objects()
        try:
            yield
        finally:
            repair.cancel()
            await asyncio.gather(repair, return_exceptions=True)
            await app.state.audit_writer.stop()  # flush the audit trail before the store closes
            await active.close()

    app = FastAPI(title="fhir-scheduler", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    app.include_router(monitoring.router)
    install_patient_web(app, settings)
    prefix = _fhir_prefix(settings.base_url)
    # Public, and outside the guarded FHIR router: clients read it before holding a token.
    app.add_route(f"{prefix}/.well-known/smart-configuration", auth_web.smart_configuration,
                  methods=["GET"])
    if settings.auth_mode == "embedded":
        app.mount(_path_of(settings.issuer), auth_web.auth_router())
    app.state.fhir_router = fhir_router(app.state._state)  # noqa: SLF001 (State's dict)
    app.mount(prefix, app.state.fhir_router)
    if prefix:  # transactions are posted to the base itself, without a trailing slash
        app.add_route(prefix, _bundle_at_base, methods=["POST"])
    return app


async def _recover_periodically(ctx: FhirContext, interval_s: float) -> None:
    """Repair lapsed slot holds at start-up and then every `interval_s`; never crash the app."""
    while True:
        try:
            report = await recover(ctx, now=datetime.now(UTC))
            if report.freed or report.finalized:
                log.info("slot recovery freed %d and finalized %d lapsed holds",
                         len(report.freed), len(report.finalized))
        except Exception:
            log.exception("slot recovery failed; retrying in %ss", interval_s)
        if interval_s <= 0:
            return
        await asyncio.sleep(interval_s)


def _start_auth(app: FastAPI, settings: Settings) -> None:
    """The token validator, and in embedded mode the authorization server feeding it revocations."""
    server = build_authorization_server(settings) if settings.auth_mode == "embedded" else None
    app.state.auth_server = server
    app.state.smart_configuration = smart_configuration(server.endpoints) if server else None
    app.state.token_validator = build_token_validator(
        settings, server.revocations if server else None)


def _path_of(url: str) -> str:
    """The path part of a URL (`/auth` of `http://host/auth`), where its routes are mounted."""
    path = url.split("://", 1)[-1].partition("/")[2]
    return "/" + path.strip("/") if path else ""


def _fhir_prefix(base_url: str) -> str:
    """The path part of the base URL (`/fhir`), where the FHIR routes live."""
    path = base_url.split("://", 1)[-1].partition("/")[2]
    return "/" + path.strip("/") if path else ""
