"""``journey list | pause | resume | stop | archive``: an operator's controls over journeys.

Bad input (an unknown journey, a transition its state does not allow) is one line on stderr and
exit code 2, with nothing changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer

from engine.caps.factory import load_contact_policy
from engine.cli.stores import open_store
from engine.dsl.errors import DslError
from engine.services.lifecycle import (
    JourneyLifecycle,
    LifecycleError,
    LifecycleResult,
    check_transition,
)
from engine.settings import Settings
from engine.temporal import TemporalUnavailable, connect

T = TypeVar("T")

Reason = Annotated[str | None, typer.Option(help="why: kept with the change, shown in status")]


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to ``app`` (the ``journey`` CLI)."""
    app.command("list")(list_journeys)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("stop")(stop)
    app.command("archive")(archive)


def list_journeys(
    all_: Annotated[bool, typer.Option("--all", help="include archived journeys")] = False,
) -> None:
    """Every deployed journey: state, live version, live runs, entered and sent today."""
    settings = Settings()

    async def go() -> list[str]:
        zone = ZoneInfo(load_contact_policy(settings).timezone)
        midnight = datetime.combine(datetime.now(zone).date(), time(), zone).astimezone(UTC)
        async with open_store(settings) as store:
            versions = await store.latest_versions()
            controls = await store.journey_controls()
            activity = await store.journey_activity(midnight)
        lines = [f"{'journey':<24}{'state':<10}{'version':>8}{'live':>8}{'entered':>9}{'sent':>8}"]
        lines[0] += "  (today: entered, sent)"
        for version in versions:
            jid = version.journey_id
            state = controls[jid].state if jid in controls else "active"
            if state == "archived" and not all_:
                continue
            seen = activity.get(jid)
            live, entered, sent = (
                (seen.live, seen.entered_since, seen.sent_since) if seen else (0, 0, 0)
            )
            lines.append(f"{jid:<24}{state:<10}{version.version:>8}{live:>8}{entered:>9}{sent:>8}")
        return lines

    for line in _guarded(go()):
        typer.echo(line)


def pause(journey_id: str, reason: Reason = None) -> None:
    """No new entries; every live run holds before its next send (waits go on)."""
    _change("pause", journey_id, reason)


def resume(journey_id: str, reason: Reason = None) -> None:
    """Open entries again and release the held runs."""
    _change("resume", journey_id, reason)


def stop(journey_id: str, reason: Reason = None) -> None:
    """End every live run now (status stopped); nothing more is sent."""
    _change("stop", journey_id, reason)


def archive(journey_id: str, reason: Reason = None) -> None:
    """Hide a stopped journey from `journey list` (its history stays)."""
    _change("archive", journey_id, reason)


def _change(action: str, journey_id: str, reason: str | None) -> None:
    settings = Settings()

    async def go() -> LifecycleResult:
        async with open_store(settings) as store:
            await check_transition(store, action, journey_id)  # bad input: before connecting
            client = await connect(settings.temporal_address, settings.temporal_namespace)
            change: Callable[..., Awaitable[LifecycleResult]] = getattr(
                JourneyLifecycle(store, client), action
            )
            return await change(journey_id, "cli", datetime.now(UTC), reason)

    result = _guarded(go())
    control = result.control
    typer.echo(
        f"{journey_id}: {result.previous} -> {control.state} ({result.signalled} live runs told)"
    )
    if result.unreached:
        typer.echo(
            f"{len(result.unreached)} live runs could not be told yet (still starting?); "
            f"run the command again: {', '.join(result.unreached[:5])}",
            err=True,
        )
        raise typer.Exit(1)


def _guarded(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except LifecycleError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except (DslError, TemporalUnavailable) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
