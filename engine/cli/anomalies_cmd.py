"""``journey anomalies [ID...]``: each journey's rates of the last hour and day against its own
baseline (see `engine.services.anomalies`); run it from cron every few minutes to be alerted.

An unknown journey is one line on stderr and exit code 2.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from engine.cli.stores import open_store
from engine.settings import Settings


def register(app: typer.Typer) -> None:
    """Add ``anomalies`` to ``app``."""
    app.command("anomalies")(anomalies)


def anomalies(
    journey_ids: Annotated[
        list[str] | None, typer.Argument(help="Journey ids; none: every deployed journey.")
    ] = None,
) -> None:
    """Suppression, failure, conversion and unsubscribe rates that left their baseline; each is
    logged and, with JOURNEY_ALERT_WEBHOOK set, POSTed there once per window."""
    from engine.services.report import UnknownJourney

    try:
        lines = asyncio.run(_check(Settings(), journey_ids or []))
    except UnknownJourney as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    for line in lines or ["no anomalies"]:
        typer.echo(line)


async def _check(settings: Settings, journey_ids: list[str]) -> list[str]:
    import httpx

    from engine.caps.factory import redis_client
    from engine.services.anomalies import alert, find_anomalies
    from engine.services.report import deployed_journeys

    at = datetime.now(UTC)
    redis = redis_client(settings)
    lines = []
    try:
        async with open_store(settings) as store, httpx.AsyncClient(timeout=10) as http:
            for journey in await deployed_journeys(store, journey_ids):
                found = await find_anomalies(store, journey.id, at)
                await alert(found, redis, settings.alert_webhook, http)
                lines += [
                    f"{a.journey_id}: {a.rate} rate of the last {a.window} {a.value:.1%} "
                    f"({a.count} of {a.sample}), baseline {a.baseline:.1%}"
                    for a in found
                ]
    finally:
        await redis.aclose()
    return lines
