"""``journey status ID``: budget used and left, progress to the target and the pace.

An unknown journey is one line on stderr and exit code 2; a broken policy file, exit code 1.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from redis.exceptions import RedisError

from engine.cli.stores import open_store
from engine.dsl.errors import DslError
from engine.settings import Settings


def register(app: typer.Typer) -> None:
    """Add ``status`` to ``app``."""
    app.command("status")(status)


def status(
    journey_id: Annotated[str, typer.Argument(help="The journey's id.")],
) -> None:
    """Budget used / left, progress to the target and the pace (ahead / on track / behind)."""
    from engine.services.report import UnknownJourney

    settings = Settings()
    try:
        lines = asyncio.run(_status(settings, journey_id))
    except UnknownJourney as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except DslError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except (RedisError, OSError) as exc:
        typer.echo(f"the cap store (JOURNEY_REDIS_URL) is unreachable: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in lines:
        typer.echo(line)


async def _status(settings: Settings, journey_id: str) -> list[str]:
    from engine.caps.factory import load_contact_policy, redis_client
    from engine.dsl.tiers import Tiers
    from engine.runner import load_member_tiers
    from engine.services.status import journey_status, render

    policy, tiers = load_contact_policy(settings), load_member_tiers(settings) or Tiers()
    redis = redis_client(settings)
    try:
        async with open_store(settings) as store:
            found = await journey_status(
                store, redis, journey_id, policy=policy, tiers=tiers, now=datetime.now(UTC)
            )
    finally:
        await redis.aclose()
    return render(found)
