"""The `fhir-scheduler` command: serve the API, load demo data and generate slots."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime

import typer
import uvicorn

from fhir_server.fhir.errors import FhirError, StoreUnavailable
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
    if created:
        typer.echo(f"Loaded {created} demo resources.")
    uvicorn.run("fhir_server.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level=settings.log_level.lower(), access_log=False)


@app.command()
def seed() -> None:
    """Load the demo clinic (organization, practitioners, rooms, device, patients, slots)."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    created = _run_prepare(settings, seed=True)
    typer.echo(f"Loaded {created} demo resources (existing ones were kept).")


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


def main() -> None:
    """Entry point for `python -m fhir_server`."""
    app(sys.argv[1:])
