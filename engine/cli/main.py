"""``journey``: the command line for marketers, engineers and operators.

Each command reads `Settings()` once, wires what it needs, and turns expected failures (bad YAML,
a taken port, a missing binary) into one line on stderr and exit code 1 — never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from engine.cli import authoring, connectors_cmd, data_cmd
from engine.cli.stores import open_store
from engine.dsl.errors import DslError
from engine.settings import Settings
from engine.stack import StackError, StackPorts
from engine.templates import TemplateError
from engine.temporal import TemporalUnavailable

app = typer.Typer(
    name="journey",
    help="Journey Engine: marketing journeys as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    # A crash prints a plain traceback: rich's default shows every frame's locals, which leaks
    # settings and personal data into the terminal and took minutes on a worker's large state.
    pretty_exceptions_show_locals=False,
)
authoring.register(app)
connectors_cmd.register(app)
data_cmd.register(app)

T = TypeVar("T")


def _run(coro: Awaitable[T]) -> T:
    """Run a command's coroutine; expected failures become one line and exit code 1."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except (DslError, TemplateError, StackError, TemporalUnavailable) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _say(line: str) -> None:
    typer.echo(line)


@app.command()
def demo(
    profiles: Annotated[int, typer.Option(help="size of the synthetic population")] = 2000,
    seed: Annotated[int, typer.Option(help="seed of the population and purchases")] = 7,
    time_scale: Annotated[
        float, typer.Option(help="waits are divided by this; 86400 = a day per second")
    ] = 86400.0,
    temporal_port: int = 7233,
    ui_port: int = 8233,
    redis_port: int = 6380,
) -> None:
    """Run the example journeys end to end on the embedded stack and print their funnels."""
    from engine.demo.run import DemoOptions, run_demo

    settings = Settings()
    options = DemoOptions(
        home=settings.home,
        journeys_dir=settings.journeys_dir,
        profiles=profiles,
        seed=seed,
        time_scale=time_scale,
        ports=StackPorts(temporal_port, ui_port, redis_port),
    )
    _run(run_demo(options, _say))


@app.command()
def dev(
    temporal_port: int = 7233,
    ui_port: int = 8233,
    redis_port: int = 6380,
    api_port: int = 8000,
) -> None:
    """Start the embedded stack (Temporal + UI, Redis, SQLite, a worker, the API) until Ctrl-C."""
    from engine.devstack import run_dev

    _run(run_dev(Settings(), StackPorts(temporal_port, ui_port, redis_port), api_port, _say))


@app.command()
def worker() -> None:
    """Run a journey worker against JOURNEY_TEMPORAL_ADDRESS until interrupted."""
    from engine.runner import run_worker

    _run(run_worker(Settings()))


@app.command()
def api(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve the HTTP ingest API (needs JOURNEY_API_KEYS, a JSON list of bearer keys) and the
    HTML report at /reports (an API key or a link from `journey report --link`)."""
    from engine.api import ApiConfigError, create_app, serve_api
    from engine.runner import report_source
    from engine.services.events import redeliver_periodically

    async def go() -> None:
        settings = Settings()
        keys = [key.get_secret_value() for key in settings.api_keys]
        try:
            async with _enroller(settings) as (store, _, router):
                app_ = create_app(
                    store,
                    router,
                    keys,
                    unsubscribe_secret=settings.resolved_unsubscribe_secret(),
                    reports=report_source(settings, store),
                    report_secret=settings.resolved_report_secret(),
                )
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                sweeper = asyncio.create_task(redeliver_periodically(router, stop))
                await serve_api(app_, host, port, stop)
                await sweeper
        except ApiConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None

    _run(go())


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (JOURNEY_DATABASE_URL)."""

    async def go() -> None:
        async with open_store(Settings()):
            typer.echo("database is up to date")

    _run(go())


@app.command()
def deploy(paths: Annotated[list[Path], typer.Argument(help="journey YAML files")]) -> None:
    """Validate and store journeys: new content is a new version; runs in flight keep theirs."""
    from engine.services.deploy import deploy_file, journey_files

    settings = Settings()

    async def go() -> None:
        journeys, others = journey_files(paths)
        for path, kind in others:
            typer.echo(f"skipped: {path} (a {kind} file, not a journey)")
        async with open_store(settings) as store:
            for path in journeys:
                version, created = await deploy_file(store, path, datetime.now(UTC))
                state = "deployed" if created else "unchanged"
                typer.echo(f"{state}: {version.journey_id} v{version.version} ({path})")
            await _sync_schedules(settings, store)

    _run(go())


async def _sync_schedules(settings: Settings, store: Any) -> None:
    """Segment-entry journeys run on Temporal Schedules; bring them in line with the deploy."""
    from engine.caps.factory import load_contact_policy
    from engine.runner import load_member_tiers
    from engine.services.schedules import sync_schedules
    from engine.temporal import connect

    try:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
    except TemporalUnavailable:
        typer.echo(
            f"schedules not synced: Temporal is not reachable at {settings.temporal_address}; "
            "deploy again once it is (nothing else changes)"
        )
        return
    ids = await sync_schedules(
        client,
        store,
        load_contact_policy(settings),
        journeys_dir=settings.journeys_dir,
        task_queue=settings.task_queue,
        rules=load_member_tiers(settings),
    )
    typer.echo(f"schedules: {', '.join(ids) if ids else 'none'}")


@asynccontextmanager
async def _enroller(settings: Settings) -> AsyncIterator[tuple[Any, Any, Any]]:
    from engine.services.enroll import Enroller
    from engine.services.events import EventRouter
    from engine.temporal import connect

    async with open_store(settings) as store:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
        enroller = Enroller(store, client, settings.task_queue, time_scale=settings.time_scale)
        yield store, enroller, EventRouter(store, client, enroller)


@app.command()
def enroll(
    journey_id: Annotated[str, typer.Argument(help="a deployed journey id")],
    profiles: Annotated[Path, typer.Option(help='JSONL file: one {"id": ...} per line')],
) -> None:
    """Enter people into the latest version of a journey (re-entry rules apply)."""

    async def go() -> None:
        ids = _read_profile_ids(profiles)
        async with _enroller(Settings()) as (store, enroller, _):
            version = await store.latest_version(journey_id)
            if version is None:
                typer.echo(
                    f"journey '{journey_id}' is not deployed: run `journey deploy`", err=True
                )
                raise typer.Exit(1)
            report = await enroller.enroll(version, ids, datetime.now(UTC))
            typer.echo(", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items())))

    _run(go())


def _read_profile_ids(path: Path) -> list[str]:
    ids: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ids.append(str(row["id"]) if isinstance(row, dict) else str(row))
        except (json.JSONDecodeError, KeyError):
            typer.echo(f'{path}:{number}: expected a JSON object with "id"', err=True)
            raise typer.Exit(1) from None
    return ids


@app.command()
def event(
    profile_id: str,
    name: str,
    props: Annotated[str, typer.Option(help="properties as a JSON object")] = "{}",
    event_id: Annotated[str | None, typer.Option(help="idempotency id")] = None,
) -> None:
    """Record a customer event and wake the journeys that listen for it."""
    from engine.domain import Event

    try:
        properties = json.loads(props)
        if not isinstance(properties, dict):
            raise ValueError
    except ValueError:
        typer.echo("--props must be a JSON object, e.g. '{\"amount\": 99}'", err=True)
        raise typer.Exit(1) from None

    async def go() -> None:
        async with _enroller(Settings()) as (_, __, router):
            now = datetime.now(UTC)
            new = await router.ingest(
                Event(event_id or uuid.uuid4().hex, profile_id, name, now, properties), now
            )
            typer.echo("recorded" if new else "duplicate event id: ignored")

    _run(go())


@app.command()
def why(
    profile_id: str,
    journey: Annotated[str | None, typer.Option(help="only this journey")] = None,
) -> None:
    """Every send attempt for a person and why it went out or did not (rule, count, frees at)."""
    from engine.services.why import why as explain_sends

    async def go() -> None:
        async with open_store(Settings()) as store:
            lines = await explain_sends(store, profile_id, journey)
        for line in lines or [f"no send attempts recorded for {profile_id}"]:
            typer.echo(line)

    _run(go())


@app.command()
def report(
    journey_ids: Annotated[list[str] | None, typer.Argument(help="default: every journey")] = None,
    html: Annotated[
        Path | None, typer.Option(help="write the report as one self-contained HTML page here")
    ] = None,
    link: Annotated[
        bool, typer.Option(help="print a signed link to the report served by the API")
    ] = False,
    valid_for: Annotated[str, typer.Option(help="how long the link works: 12h, 7d, ...")] = "1d",
) -> None:
    """Print each journey's funnel: entered, reached, sent, suppressed, exited, converted.

    With --html, write the whole report (funnels, experiments, the nine numbers, fatigue,
    channel effect) as one page; with --link, print a link that opens it in a browser from
    the API (JOURNEY_PUBLIC_URL) until it expires."""
    from engine.cli import report_cmd
    from engine.dsl.models import Journey
    from engine.services.report import format_funnel, funnel

    settings = Settings()
    if html is not None:
        written = _run(report_cmd.write_html(settings, journey_ids, html))
        typer.echo(f"report written to {written}")
    if link:
        typer.echo(_run(report_cmd.link(settings, journey_ids, valid_for)))
    if html is not None or link:
        return

    async def go() -> None:
        async with open_store(settings) as store:
            for version in await store.latest_versions():
                if journey_ids and version.journey_id not in journey_ids:
                    continue
                journey = Journey.model_validate(version.definition)
                typer.echo(format_funnel(await funnel(store, journey), journey.name) + "\n")

    _run(go())


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
