"""``journey report --html`` and ``journey report --link``: the report as one page, written to
a file or served by the API behind a signed, expiring link."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from engine.analytics.period import Period
from engine.cli.stores import open_store
from engine.dsl.durations import parse_duration
from engine.settings import Settings


async def write_html(
    settings: Settings,
    journey_ids: list[str] | None,
    path: Path,
    period: Period | None = None,
    sequential: bool = False,
) -> Path:
    """Build the report of ``journey_ids`` (every journey when None), write it to ``path`` and
    return where it is; nothing is written when a journey is not deployed."""
    from engine.analytics.html import render_html
    from engine.runner import report_source
    from engine.services.reporting import UnknownJourney, write_report

    async with open_store(settings) as store:
        try:
            report = await report_source(settings, store)(
                journey_ids, period=period, sequential=sequential
            )
        except UnknownJourney as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    return write_report(path, render_html(report))


async def link(settings: Settings, journey_ids: list[str] | None, valid_for: str) -> str:
    """A signed link to the report served by the API at JOURNEY_PUBLIC_URL: every journey's,
    or one journey's when one id is given."""
    from engine.report_links import report_url
    from engine.services.reporting import UnknownJourney, deployed_journeys

    try:
        lifetime = parse_duration(valid_for)
    except ValueError as exc:
        typer.echo(f"--valid-for: {exc}", err=True)
        raise typer.Exit(1) from None
    if journey_ids and len(journey_ids) > 1:
        typer.echo(
            "a link opens one journey's report or every journey's: give one id or none", err=True
        )
        raise typer.Exit(1)
    if journey_ids:
        async with open_store(settings) as store:
            try:
                await deployed_journeys(store, journey_ids)
            except UnknownJourney as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(1) from None
    expires = datetime.now(UTC) + lifetime
    journey_id = journey_ids[0] if journey_ids else None
    return report_url(settings.public_url, settings.resolved_report_secret(), journey_id, expires)
