"""``journey runs | inspect``: an operator's view of runs in flight.

Bad input (an unknown ``--status``) is one line on stderr and exit code 2; Temporal out of reach
is one line and exit code 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import typer
from temporalio.service import RPCError

from engine.cli.stores import open_store
from engine.services.runs import (
    STATUSES,
    RunsError,
    format_inspection,
    format_runs,
    inspect,
    ledger_summary,
    list_runs,
    visibility_query,
)
from engine.settings import Settings
from engine.temporal import TemporalUnavailable, connect

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add ``runs`` and ``inspect`` to ``app`` (the ``journey`` CLI)."""
    app.command("runs")(runs)
    app.command("inspect")(inspect_person)


def runs(
    journey_id: str,
    step: Annotated[str | None, typer.Option(help="only runs resting in this step")] = None,
    status: Annotated[
        str | None, typer.Option(help="only runs in this state: " + ", ".join(STATUSES))
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many runs")] = 100,
) -> None:
    """A journey's runs from Temporal visibility (workflow id, step, status, start), and what
    the ledger counts. Visibility lags a second or so behind the runs."""
    settings = Settings()

    async def go() -> list[str]:
        visibility_query(journey_id, step, status)  # bad input: before connecting
        client = await connect(settings.temporal_address, settings.temporal_namespace)
        rows = await list_runs(client, journey_id, step=step, status=status, limit=limit)
        async with open_store(settings) as store:
            ledger = await ledger_summary(store, journey_id)
        lines = format_runs(rows) if rows else [f"no runs of {journey_id} match"]
        if len(rows) == limit:
            lines.append(f"(first {limit}; --limit shows more)")
        return [*lines, ledger]

    for line in _guarded(go()):
        typer.echo(line)


def inspect_person(
    profile_id: str,
    journey: Annotated[str | None, typer.Option(help="only this journey")] = None,
) -> None:
    """A person's runs: where each live run is (its state query), the path taken, the ledger,
    and every send decision made for them."""
    settings = Settings()

    async def go() -> list[str]:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
        async with open_store(settings) as store:
            return format_inspection(await inspect(client, store, profile_id, journey))

    for line in _guarded(go()):
        typer.echo(line)


def _guarded(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except RunsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except TemporalUnavailable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except RPCError as exc:
        typer.echo(f"Temporal failed ({exc.status.name}): {exc.message}", err=True)
        raise typer.Exit(1) from None
