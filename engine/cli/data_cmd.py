"""Customer-data commands: ``journey identify``, ``journey import cdnow|events`` and
``journey segment preview``.

    journey identify email=li.lei@example.com phone=13800138000 --attr first_name=磊 --tag vip
    journey import cdnow ../shared/data/cdnow/CDNOW_master.txt
    journey import events events.jsonl
    journey segment preview lifecycle_dormant --today 1998-01-01

``--today DATE`` evaluates as of the start of that day (00:00 UTC): events from that day on do
not exist yet. Without it, the current time. Expected failures (a bad file, an unknown tier) are
one line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from engine.cli.stores import open_store
from engine.conditions.errors import ConditionError
from engine.dsl.errors import DslError
from engine.dsl.loader import load_tiers
from engine.dsl.tiers import Tiers
from engine.importers.errors import ImportProblems
from engine.settings import Settings

T = TypeVar("T")

import_app = typer.Typer(help="Import customer data into the store.", no_args_is_help=True)
segment_app = typer.Typer(help="Look at segments over the stored profiles.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``identify`` and the ``import`` and ``segment`` groups to ``app`` (``journey``)."""
    app.command("identify")(identify_command)
    app.add_typer(import_app, name="import")
    app.add_typer(segment_app, name="segment")


def _run(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except (DslError, ImportProblems, ConditionError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def evaluation_time(today: datetime | None) -> datetime:
    """``--today``: the start of that day in UTC; none: now."""
    if today is None:
        return datetime.now(UTC)
    return datetime.combine(today.date(), datetime.min.time(), tzinfo=UTC)


def load_rules(journeys_dir: Path) -> Tiers:
    """``tiers.yaml`` of the journeys folder, or the defaults (no tiers) when there is none."""
    path = journeys_dir / "tiers.yaml"
    return load_tiers(path) if path.exists() else Tiers()


TodayOption = Annotated[
    datetime | None,
    typer.Option(
        "--today",
        formats=["%Y-%m-%d"],
        help="evaluate as of the start of this day (UTC), e.g. 1998-01-01",
    ),
]


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    """``key=value`` arguments as pairs; a malformed one is a one-line error."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            typer.echo(f"{what} must look like key=value, got {item!r}", err=True)
            raise typer.Exit(1)
        pairs.append((key.strip(), value))
    return pairs


def identify_command(
    identities: Annotated[
        list[str],
        typer.Argument(help="TYPE=VALUE, e.g. email=li@example.com phone=13800138000"),
    ],
    profile: Annotated[str | None, typer.Option(help="the profile id you already use")] = None,
    attr: Annotated[list[str] | None, typer.Option(help="attribute KEY=VALUE (repeatable)")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="tag to add (repeatable)")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Asia/Shanghai")] = None,
    locale: Annotated[str | None, typer.Option(help="e.g. zh-CN")] = None,
) -> None:
    """Find or create the person known by these identities; merge the profiles they belong to.

    The same as ``POST /v1/identify``: one transaction, identities normalised (emails lower-cased,
    phones to E.164, national numbers read in JOURNEY_DEFAULT_REGION), the oldest profile
    surviving a merge.
    """
    from engine.identity import InvalidIdentity, identity

    settings = Settings()
    wanted = []
    for number, (kind, value) in enumerate(_pairs(identities, "an identity"), start=1):
        try:
            wanted.append(identity(kind, value, settings.default_region))
        except InvalidIdentity as exc:
            # The message never repeats the value: it may be personal data.
            typer.echo(f"identity {number} ({kind}): {exc}", err=True)
            raise typer.Exit(1) from None

    async def go() -> None:
        async with open_store(settings) as store:
            result = await store.identify(
                wanted,
                profile_id=profile,
                attributes=dict(_pairs(attr or [], "--attr")),
                add_tags=tag or [],
                timezone=timezone,
                locale=locale,
                at=datetime.now(UTC),
            )
        merged = f", merged {', '.join(result.merged)}" if result.merged else ""
        typer.echo(f"{result.profile_id} ({'created' if result.created else 'found'}{merged})")

    _run(go())


@import_app.command("cdnow")
def import_cdnow_command(
    path: Annotated[Path, typer.Argument(help="CDNOW_master.txt")],
) -> None:
    """Import the CDNOW purchase history: customers as profiles, purchases as order_paid."""
    from engine.importers.cdnow import import_cdnow

    async def go() -> None:
        async with open_store(Settings()) as store:
            report = await import_cdnow(store, path)
        typer.echo(
            f"customers: {report.profiles}, purchases: {report.events}, "
            f"new events: {report.new_events} ({report.seconds:.1f}s)"
        )

    _run(go())


@import_app.command("events")
def import_events_command(
    path: Annotated[Path, typer.Argument(help="JSONL: one event object per line")],
) -> None:
    """Import events (history: they wake no journey); every line is checked before any is
    written."""
    from engine.importers.events_jsonl import import_events

    async def go() -> None:
        async with open_store(Settings()) as store:
            report = await import_events(store, path)
        typer.echo(f"events: {report.lines}, new: {report.new}, duplicates: {report.duplicates}")

    _run(go())


@segment_app.command("preview")
def preview_command(
    segment_id: Annotated[str, typer.Argument(help="a segment id (journeys/segments/ID.yaml)")],
    today: TodayOption = None,
    sample: Annotated[int, typer.Option(min=0, max=1000, help="members to list")] = 10,
) -> None:
    """Print how many profiles are in the segment and the first few, in id order."""
    from engine.services.segments import find_segment, preview_segment

    async def go() -> None:
        settings = Settings()
        segment = find_segment(settings.journeys_dir, segment_id)
        rules = load_rules(settings.journeys_dir)
        now = evaluation_time(today)
        async with open_store(settings) as store:
            preview = await preview_segment(store, segment, now, rules=rules, sample=sample)
        typer.echo(f"{segment.id} ({segment.name}) as of {now.isoformat()}: {preview.count}")
        for profile_id in preview.sample:
            typer.echo(f"  {profile_id}")

    _run(go())
