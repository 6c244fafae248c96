"""The `fhir-scheduler` command: serve the API, load demo data, generate slots, mint tokens."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from fhir_server.auth.issuing import issue_access_token
from fhir_server.auth.keys import KeyStoreError, load_or_create_keys
from fhir_server.auth.policy import Access
from fhir_server.auth.server.clients import (
    DEFAULT_BACKEND_ROLE,
    ClientRegistry,
    ClientRegistryError,
    new_client,
)
from fhir_server.auth.server.launch import LaunchContext, bare_id, create_launch_id
from fhir_server.auth.server.users import UserRegistry, UserRegistryError, new_user
from fhir_server.fhir.errors import FhirError, InvalidRequest, StoreUnavailable
from fhir_server.notify.links import LinkSecretError, SignedLinks
from fhir_server.notify.processes import embedded_dispatch, run_beat, run_worker
from fhir_server.services.seeding import seed_demo, store_is_empty
from fhir_server.services.slot_generation import (
    GenerationReport,
    active_schedule_ids,
    generate_over_horizon,
)
from fhir_server.services.wiring import make_context
from fhir_server.settings import Settings, get_settings
from fhir_server.store.factory import open_store_for_url

app = typer.Typer(help="fhir-scheduler: a FHIR R4 appointment scheduling server.",
                  no_args_is_help=True, add_completion=False)


async def _prepare_store(settings: Settings, *, seed: bool, only_if_empty: bool) -> int:
    """Check the store answers (and create its schema); optionally load the demo clinic."""
    store = open_store_for_url(settings.store_url, timeout_ms=settings.mongo_timeout_ms)
    await store.open()
    try:
        await store.ping()
        if not seed:
            return 0
        ctx = make_context(store, capability_dir=settings.capability_dir,
                           base_url=settings.base_url)
        if only_if_empty and not await store_is_empty(ctx):
            return 0
        now = datetime.now(UTC)
        return await seed_demo(ctx, today=now.date(), now=now)
    finally:
        await store.close()


def _run_prepare(settings: Settings, *, seed: bool, only_if_empty: bool = False) -> int:
    """Like `_prepare_store`, but an unreachable store ends the command with one clear line."""
    try:
        return asyncio.run(_prepare_store(settings, seed=seed, only_if_empty=only_if_empty))
    except StoreUnavailable as error:
        where = settings.store_url.split("@")[-1]
        typer.echo(f"fhir-scheduler: cannot use the store at {where}: {error}", err=True)
        raise typer.Exit(code=2) from None


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
          port: int = typer.Option(8080, help="TCP port."),
          seed_if_empty: bool = typer.Option(
              False, help="Load the demo clinic into an empty store first."),
          workers: int = typer.Option(1, help="Worker processes.")) -> None:
    """Serve the FHIR API at the configured base URL."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    created = _run_prepare(settings, seed=seed_if_empty, only_if_empty=True)
    if created:  # demo users (known passwords) only beside demo data, never in a real clinic
        typer.echo(f"Loaded {created} demo resources.")
        _add_demo_users(settings)
    with embedded_dispatch(settings):  # reminders' worker and beat, in the default setup
        uvicorn.run("fhir_server.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level=settings.log_level.lower(), access_log=False)


@app.command()
def worker(concurrency: int = typer.Option(
               1, min=1, help="Task processes; 1 runs tasks in this process (scale out with "
                              "more workers)."),
           metrics_port: int | None = typer.Option(
               None, help="Serve this worker's Prometheus counters on this port "
                          "(with --concurrency 1).")) -> None:
    """Run a Celery worker that sends due reminders and records them as Communications."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_worker(settings, concurrency=concurrency, metrics_port=metrics_port)


@app.command()
def beat() -> None:
    """Run Celery beat: scans for due reminders every FHIR_SCHEDULER_DISPATCH_INTERVAL_S."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_beat(settings)


@app.command()
def seed() -> None:
    """Load the demo clinic (organization, practitioners, rooms, device, patients, slots)."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    created = _run_prepare(settings, seed=True)
    typer.echo(f"Loaded {created} demo resources (existing ones were kept).")
    _add_demo_users(settings)


def _add_demo_users(settings: Settings) -> None:
    """The demo users (one per role; passwords in the README) who log in at the login page."""
    added = UserRegistry.in_data_dir(settings.data_dir).add_demo_users()
    if added:
        typer.echo(f"Added demo users: {', '.join(added)} (passwords: see README, Security).")


async def _generate(settings: Settings, schedule_id: str | None,
                    days: int | None) -> list[tuple[str, GenerationReport | FhirError]]:
    """Generate slots for one schedule, or for every active one (one bad one stops none)."""
    store = open_store_for_url(settings.store_url, timeout_ms=settings.mongo_timeout_ms)
    await store.open()
    try:
        ctx = make_context(store, capability_dir=settings.capability_dir,
                           base_url=settings.base_url)
        now = datetime.now(UTC)
        ids = [schedule_id] if schedule_id else await active_schedule_ids(ctx, now=now)
        results: list[tuple[str, GenerationReport | FhirError]] = []
        for id in ids:
            try:
                results.append((id, await generate_over_horizon(ctx, id, now=now, days=days)))
            except FhirError as error:
                if isinstance(error, StoreUnavailable):
                    raise
                results.append((id, error))
        return results
    finally:
        await store.close()


@app.command("generate-slots")
def generate_slots(schedule: str | None = typer.Option(
                       None, help="Schedule id; all active schedules when left out."),
                   days: int | None = typer.Option(
                       None, min=1, help="Days ahead from now; default: each schedule's "
                                         "planningHorizon (28 days without one).")) -> None:
    """Create, update and remove free slots so they match each schedule's rules."""
    settings = get_settings()
    try:
        results = asyncio.run(_generate(settings, schedule, days))
    except StoreUnavailable as error:
        typer.echo(f"fhir-scheduler: {error}", err=True)
        raise typer.Exit(code=2) from None
    for id, result in results:
        if isinstance(result, FhirError):
            typer.echo(f"Schedule/{id}: {result}", err=True)
            continue
        typer.echo(f"Schedule/{id}: {len(result.created)} created, {len(result.updated)} "
                   f"updated, {len(result.removed)} removed, {len(result.kept)} kept, "
                   f"{len(result.orphaned)} orphaned"
                   + ("" if result.rules else " (no availability rules)"))
        for appointment in result.affected_appointments:
            typer.echo(f"  Appointment/{appointment} holds a slot outside the new rules")
    if any(isinstance(result, FhirError) for _, result in results):
        raise typer.Exit(code=2)


@app.command()
def token(scope: str = typer.Option(..., help='Space-separated scopes, e.g. "user/*.cruds".'),
          patient: str | None = typer.Option(None,
                                             help="Launch patient, e.g. Patient/maria-garcia."),
          fhir_user: str | None = typer.Option(None, "--fhir-user",
                                               help="The user, e.g. Practitioner/dr-amara-okafor."),
          role: str | None = typer.Option(
              None, help="administrator, doctor, staff or patient (the fhir_scheduler_role "
                         "claim); default: from --fhir-user's type."),
          lifetime: int = typer.Option(3600, min=1, help="Seconds the token stays valid."),
          subject: str | None = typer.Option(None, help="The `sub` claim; default: the user "
                                                         "or 'fhir-scheduler-cli'.")) -> None:
    """Print one access token signed with the embedded server's keys (for scripts and tests)."""
    settings = get_settings()
    if settings.auth_mode != "embedded":
        typer.echo("fhir-scheduler: tokens can only be minted in embedded auth mode; ask the "
                   f"external issuer {settings.issuer}", err=True)
        raise typer.Exit(code=2)
    claims = {"scope": scope, "fhirUser": fhir_user, "patient": patient,
              "fhir_scheduler_role": role}
    try:
        Access.from_claims({k: v for k, v in claims.items() if v is not None})
        keys = load_or_create_keys(settings.data_dir)
    except (InvalidRequest, KeyStoreError) as error:
        typer.echo(f"fhir-scheduler: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(issue_access_token(
        keys, issuer=settings.issuer, audience=settings.base_url,
        subject=subject or fhir_user or "fhir-scheduler-cli", scopes=scope,
        lifetime=timedelta(seconds=lifetime), now=datetime.now(UTC), fhir_user=fhir_user,
        patient=patient, role=role, client_id="fhir-scheduler-cli"))


clients_app = typer.Typer(help="The embedded authorization server's registered clients "
                                "(data_dir/auth/clients.json; for dev and single-site use).",
                           no_args_is_help=True)
app.add_typer(clients_app, name="clients")


@clients_app.command("add")
def clients_add(client_id: str = typer.Option(..., "--client-id", help="The client's id."),
                scope: str = typer.Option(..., help='Scopes it may be granted, e.g. '
                                                    '"system/*.rs system/Appointment.cruds".'),
                secret: str | None = typer.Option(
                    None, help="A secret for client_secret_basic (stored only as a hash)."),
                jwks: Annotated[Path | None, typer.Option(
                    exists=True, dir_okay=False,
                    help="A JWKS file with its public keys, for private_key_jwt.")] = None,
                redirect_uri: Annotated[list[str] | None, typer.Option(
                    "--redirect-uri", help="Allowed redirect URI (repeatable).")] = None,
                role: str = typer.Option(DEFAULT_BACKEND_ROLE,
                                         help="Role of its backend-services tokens.")) -> None:
    """Register a client: confidential with a secret and/or a JWKS, or, with neither, a
    public SMART app (PKCE only) that needs --redirect-uri."""
    settings = get_settings()
    try:
        keys = json.loads(jwks.read_text("utf-8")) if jwks else None
        client = new_client(client_id=client_id, scope=scope, secret=secret, jwks=keys,
                            redirect_uris=redirect_uri or (), role=role)
        ClientRegistry.in_data_dir(settings.data_dir).add(client)
    except (ClientRegistryError, ValueError) as error:
        typer.echo(f"fhir-scheduler: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"Registered {client_id} ({', '.join(client.auth_methods)}; role {role}).")


@clients_app.command("list")
def clients_list() -> None:
    """One line per registered client: id, authentication methods, role, scopes."""
    for client in ClientRegistry.in_data_dir(get_settings().data_dir).all():
        typer.echo(f"{client.client_id}\t{','.join(client.auth_methods)}\t{client.role}\t"
                   f"{' '.join(client.scopes)}")


users_app = typer.Typer(help="People who log in at the embedded server's login page "
                              "(data_dir/auth/users.json; for dev and single-site use).",
                         no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(username: str = typer.Option(..., help="The login name."),
              role: str = typer.Option(..., help="administrator, doctor, staff or patient."),
              fhir_user: str = typer.Option(..., "--fhir-user",
                                            help="Practitioner/<id> (Patient/<id> for a "
                                                 "patient): the user's own record."),
              password: str | None = typer.Option(
                  None, help="The password (visible in the process list; prefer "
                             "--password-stdin)."),
              password_stdin: bool = typer.Option(False, "--password-stdin",
                                                  help="Read the password from stdin.")) -> None:
    """Create a user who can log in to SMART apps through the standalone or EHR launch."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        typer.echo("fhir-scheduler: give --password or --password-stdin", err=True)
        raise typer.Exit(code=2)
    try:
        user = new_user(username=username, password=password, role=role, fhir_user=fhir_user)
        UserRegistry.in_data_dir(get_settings().data_dir).add(user)
    except UserRegistryError as error:
        typer.echo(f"fhir-scheduler: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"Added {username} ({user.role.value}, {fhir_user}).")


@users_app.command("list")
def users_list() -> None:
    """One line per user: name, role, fhirUser."""
    for user in UserRegistry.in_data_dir(get_settings().data_dir).all():
        typer.echo(f"{user.username}\t{user.role.value}\t{user.fhir_user}")


@app.command()
def launch(patient: str | None = typer.Option(None, help="Launch patient, e.g. "
                                                         "Patient/maria-garcia."),
           encounter: str | None = typer.Option(None, help="Launch encounter, e.g. "
                                                            "Encounter/visit-1."),
           need_patient_banner: bool = typer.Option(
               True, help="Whether the app must show its own patient banner."),
           smart_style_url: str | None = typer.Option(None, help="The EHR's style URL."),
           lifetime: int = typer.Option(3600, min=1, help="Seconds the launch id stays valid."),
           ) -> None:
    """Print an EHR launch id: give it to the app as `launch` (SMART EHR launch)."""
    settings = get_settings()
    if settings.auth_mode != "embedded":
        typer.echo("fhir-scheduler: launch ids exist only in embedded auth mode", err=True)
        raise typer.Exit(code=2)
    try:
        context = LaunchContext(
            patient=bare_id(patient, "Patient") if patient else None,
            encounter=bare_id(encounter, "Encounter") if encounter else None,
            need_patient_banner=need_patient_banner, smart_style_url=smart_style_url)
        keys = load_or_create_keys(settings.data_dir)
    except (ValueError, KeyStoreError) as error:
        typer.echo(f"fhir-scheduler: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(create_launch_id(keys, issuer=settings.issuer, context=context,
                                now=datetime.now(UTC), lifetime=timedelta(seconds=lifetime)))


@app.command("calendar-url")
def calendar_url(owner: str = typer.Argument(
        ..., help="Practitioner/<id> (a busy-only feed) or Patient/<id>.")) -> None:
    """Print the secret iCalendar feed URL of a practitioner or patient (see README)."""
    try:
        typer.echo(SignedLinks.from_settings(get_settings()).feed_url(owner))
    except (ValueError, LinkSecretError) as error:
        typer.echo(f"fhir-scheduler: {error}", err=True)
        raise typer.Exit(code=2) from None


def main() -> None:
    """Entry point for `python -m fhir_server`."""
    app(sys.argv[1:])
