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
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from engine.cli import (
    analytics_cmd,
    anomalies_cmd,
    authoring,
    connectors_cmd,
    data_cmd,
    lifecycle_cmd,
    runs_cmd,
    simulate_cmd,
    status_cmd,
)
from engine.cli.stores import open_store
from engine.dsl.errors import DslError
from engine.settings import Settings, settings_problem
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
simulate_cmd.register(app)
lifecycle_cmd.register(app)
analytics_cmd.register(app)
runs_cmd.register(app)
status_cmd.register(app)
anomalies_cmd.register(app)


_PROCESSES = frozenset({"worker", "api", "dev", "demo"})
"""Commands that run until stopped: their logs are their output."""


@app.callback()
def _configure(ctx: typer.Context) -> None:
    # Once per process, before any command runs. Every command reads Settings(): a malformed
    # JOURNEY_* variable (JOURNEY_API_KEYS= with no JSON list) is one line here rather than a
    # traceback from inside a command. Long-running processes log at info; a one-shot
    # command's output is what it prints (simulate's timeline, a deploy's one line), so its
    # info lines wait for JOURNEY_LOG_LEVEL=info.
    from engine.demo import DEMO_LOG
    from engine.logs import configure_logging

    try:
        settings = Settings()
    except (SettingsError, ValidationError) as exc:
        typer.echo(f"invalid settings: {settings_problem(exc)}", err=True)
        raise typer.Exit(1) from None
    serving = ctx.invoked_subcommand in _PROCESSES
    # The demo's terminal shows progress and the funnels; its logs go to a file of its own.
    file = settings.home / DEMO_LOG if ctx.invoked_subcommand == "demo" else None
    if file is not None:
        file.unlink(missing_ok=True)
    configure_logging(settings, default_level="info" if serving else "warning", file=file)


T = TypeVar("T")


def _run(coro: Awaitable[T]) -> T:
    """Run a command's coroutine; expected failures become one line and exit code 1."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except (DslError, TemplateError, StackError, TemporalUnavailable) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except RPCError as exc:
        typer.echo(f"Temporal failed ({exc.status.name}): {exc.message}", err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        # The driver's own message only: SQLAlchemy's adds the statement and its parameters.
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        typer.echo(f"the store failed ({type(exc).__name__}): {reason}", err=True)
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
    from engine.cli.progress import live_progress
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
    with live_progress() as (say, progress):
        say(f"logs: {options.log_path}")
        _run(run_demo(options, say, progress))


@app.command()
def dev(
    temporal_port: int = 7233,
    ui_port: int = 8233,
    redis_port: int = 6380,
    api_port: int = 8000,
) -> None:
    """Start the embedded stack (Temporal + UI, Redis, SQLite, two workers, the API) until
    Ctrl-C."""
    from engine.devstack import run_dev

    _run(run_dev(Settings(), StackPorts(temporal_port, ui_port, redis_port), api_port, _say))


@app.command()
def worker(
    only: Annotated[
        str | None,
        typer.Option(
            help="workflows (with their local activities) or activities: run one of each, "
            "in two processes, so workflow tasks never wait behind activities"
        ),
    ] = None,
) -> None:
    """Run a journey worker against JOURNEY_TEMPORAL_ADDRESS until interrupted."""
    from engine.runner import run_worker

    if only not in (None, "workflows", "activities"):
        typer.echo(f"--only {only!r}: use workflows or activities", err=True)
        raise typer.Exit(2)
    _run(run_worker(Settings(), "all" if only is None else only))  # type: ignore[arg-type]


@app.command()
def api(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve the HTTP ingest API (needs JOURNEY_API_KEYS, a JSON list of bearer keys; keys of
    16 characters or more when --host is not a loopback address) and the HTML report at
    /reports (an API key or a link from `journey report --link`)."""
    from engine.api import ApiConfigError, create_app, serve_api
    from engine.api.auth import exposure_problem
    from engine.caps.factory import redis_client
    from engine.runner import report_source
    from engine.services.anomalies import watch_periodically
    from engine.services.events import redeliver_periodically

    settings = Settings()
    keys = [key.get_secret_value() for key in settings.api_keys]
    problem = exposure_problem(keys, host)
    if problem:  # before any connection: a misconfigured API says so at once
        typer.echo(problem, err=True)
        raise typer.Exit(1)

    async def go() -> None:
        try:
            async with _enroller(settings) as (store, _, router):
                app_ = create_app(
                    store,
                    router,
                    keys,
                    unsubscribe_secret=settings.resolved_unsubscribe_secrets(),
                    default_region=settings.default_region,
                    reports=report_source(settings, store),
                    report_secret=settings.resolved_report_secret(),
                )
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                sweeper = asyncio.create_task(redeliver_periodically(router, stop))
                redis = redis_client(settings)
                watcher = asyncio.create_task(
                    watch_periodically(store, redis, settings.alert_webhook, stop)
                )
                try:
                    await serve_api(app_, host, port, stop)
                    await sweeper
                    await watcher
                finally:
                    await redis.aclose()
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
    """Validate and store journeys: new content is a new version; runs in flight keep theirs.

    All or nothing: every file and template is checked and the schedules are created before
    any version is stored."""
    from engine.services.deploy import DeployError, deploy_all, journey_files, prepare_file

    settings = Settings()

    async def go() -> None:
        journeys, others = journey_files(paths)
        prepared = [prepare_file(path) for path in journeys]
        for path, kind in others:
            typer.echo(f"skipped: {path} (a {kind} file, not a journey)")
        async with open_store(settings) as store:
            sync = await _schedule_sync(settings, store)
            scheduled = [p.journey.id for p in prepared if p.scheduled]
            if sync is None and scheduled:
                raise DeployError(
                    f"not deployed: Temporal is not reachable at {settings.temporal_address} "
                    f"and {', '.join(scheduled)} enter(s) on a schedule; nothing was stored"
                )
            done = await deploy_all(store, prepared, datetime.now(UTC), sync)
            for p, (version, created) in zip(prepared, done.versions, strict=True):
                state = "deployed" if created else "unchanged"
                typer.echo(f"{state}: {version.journey_id} v{version.version} ({p.path})")
            if done.schedules is None:
                typer.echo(
                    f"schedules not synced: Temporal is not reachable at "
                    f"{settings.temporal_address}; deploy again once it is (nothing else changes)"
                )
            else:
                typer.echo(f"schedules: {', '.join(done.schedules) or 'none'}")

    try:
        _run(go())
    except DeployError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


async def _schedule_sync(settings: Settings, store: Any) -> Any:
    """`sync_schedules` bound to Temporal and the settings; None when Temporal is unreachable."""
    from engine.caps.factory import load_contact_policy
    from engine.runner import load_member_tiers
    from engine.services.schedules import sync_schedules
    from engine.temporal import connect

    try:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
    except TemporalUnavailable:
        return None
    policy = load_contact_policy(settings)
    rules = load_member_tiers(settings)

    async def sync(deploying: Any) -> list[str]:
        return await sync_schedules(
            client,
            store,
            policy,
            journeys_dir=settings.journeys_dir,
            task_queue=settings.task_queue,
            rules=rules,
            deploying=deploying,
        )

    return sync


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
    """Every send attempt for a person and why it went out or did not (rule, count, frees at),
    and how each of their runs ended and why."""
    from engine.services.why import why as explain_sends

    async def go() -> None:
        async with open_store(Settings()) as store:
            lines = await explain_sends(store, profile_id, journey)
        for line in lines or [f"no send attempts recorded for {profile_id}"]:
            typer.echo(line)

    _run(go())


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
