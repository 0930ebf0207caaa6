"""``journey simulate``: rehearse a journey before launch, for one person or a segment sample.

    journey simulate cart-recovery --profile p00042 --event order_paid@+3d
    journey simulate journeys/fruit_day.yaml --segment fruit_lovers --sample 1000 --json

JOURNEY is a deployed journey id (its latest version) or a journey file not deployed yet. The
store is only read (never migrated, nothing written); the run happens in a throwaway sandbox
(`engine.rehearsal`). Bad input (an unknown person, journey or segment, a malformed --event or
option) is one line on stderr and exit code 2, before anything starts.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.engine import URL, make_url

from engine.caps.factory import load_contact_policy
from engine.dsl.durations import format_duration
from engine.dsl.errors import DslError
from engine.dsl.loader import load_journey
from engine.dsl.segments import Segment
from engine.runner import load_member_tiers
from engine.servers import MissingBinary
from engine.services.deploy import channels_by_template
from engine.services.segments import find_segment, segment_members, segment_path
from engine.services.simulate import (
    Decision,
    Forecast,
    InjectedEvent,
    JourneyPlan,
    PersonRehearsal,
    SimulationInputError,
)
from engine.settings import Settings
from engine.store import Store
from engine.templates import TemplateError, load_templates

BAD_INPUT = 2


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to ``app`` (the ``journey`` CLI)."""
    app.command("simulate")(simulate)


def simulate(
    journey: Annotated[str, typer.Argument(help="a deployed journey id, or a journey file")],
    profile: Annotated[str | None, typer.Option(help="rehearse for this person")] = None,
    segment: Annotated[
        str | None, typer.Option(help="forecast for a sample of this segment")
    ] = None,
    sample: Annotated[int, typer.Option(help="people drawn from the segment")] = 1000,
    seed: Annotated[int, typer.Option(help="seed of the sample (same seed, same people)")] = 7,
    days: Annotated[int, typer.Option(help="simulated days from now")] = 14,
    event: Annotated[
        list[str] | None,
        typer.Option(help="NAME@+DURATION: the person does NAME that long after entering"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for CI")] = False,
) -> None:
    """Rehearse a journey on a time-skipping Temporal, a throwaway Redis and a copy of the
    people: the real workflow, contact policy and caps; nothing sent, the store only read."""
    if (profile is None) == (segment is None):
        _bad("give exactly one of --profile PERSON or --segment SEGMENT")
    if not 1 <= days <= 366:
        _bad(f"--days must be between 1 and 366, got {days}")
    if segment is not None and not 1 <= sample <= 100_000:
        _bad(f"--sample must be between 1 and 100000, got {sample}")
    if segment is not None and event:
        _bad("--event applies to --profile rehearsals only")
    try:
        injected = [InjectedEvent.parse(text) for text in event or []]
    except SimulationInputError as exc:
        _bad(str(exc))
    for late in (e for e in injected if e.offset >= timedelta(days=days)):
        _bad(f"--event {late.name}@+{format_duration(late.offset)} is past --days {days}")
    try:
        settings = Settings()
        url = _store_url(settings)
        plan = _file_plan(journey)
        chosen = None
        if segment is not None:
            if not segment_path(settings.journeys_dir, segment).exists():
                where = segment_path(settings.journeys_dir, segment)
                raise SimulationInputError(f"unknown segment {segment!r}: no {where}")
            chosen = find_segment(settings.journeys_dir, segment)
        options = _Options(profile, chosen, sample, seed, days, injected, as_json)
        asyncio.run(_go(settings, url, journey, plan, options))
    except SimulationInputError as exc:
        _bad(str(exc))
    except (DslError, TemplateError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(BAD_INPUT) from None
    except MissingBinary as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@dataclass(frozen=True)
class _Options:
    profile: str | None
    segment: Segment | None
    sample: int
    seed: int
    days: int
    events: list[InjectedEvent]
    as_json: bool


def _bad(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(BAD_INPUT)


async def _go(
    settings: Settings, url: URL, journey: str, plan: JourneyPlan | None, options: _Options
) -> None:
    # Imported here: the sandbox pulls in Temporal's test server support, which other commands
    # do not need.
    from engine.rehearsal import open_sandbox
    from engine.services.simulate import forecast_segment, rehearse_person

    tiers = load_member_tiers(settings)
    real = Store.from_url(url)  # only read: never migrated, nothing written
    try:
        plan = plan or await _deployed_plan(real, journey)
        began = time.monotonic()
        if options.profile is not None:
            if await real.get_profile(options.profile) is None:
                raise SimulationInputError(f"unknown person {options.profile!r}: no such profile")
            async with open_sandbox(settings, plan.journey, tiers) as sandbox:
                rehearsal = await rehearse_person(
                    real,
                    sandbox,
                    plan,
                    options.profile,
                    days=options.days,
                    events_=options.events,
                    tiers=tiers,
                )
            elapsed = time.monotonic() - began
            if options.as_json:
                typer.echo(_person_json(rehearsal, elapsed))
            else:
                typer.echo(_person_text(rehearsal) + f"\nrehearsed in {elapsed:.1f} s")
            return
        assert options.segment is not None
        members = await segment_members(real, options.segment, rules=tiers)
        timezone = load_contact_policy(settings).timezone
        async with open_sandbox(settings, plan.journey, tiers) as sandbox:
            forecast = await forecast_segment(
                real,
                sandbox,
                plan,
                members,
                sample=options.sample,
                seed=options.seed,
                days=options.days,
                timezone=timezone,
                tiers=tiers,
            )
        elapsed = time.monotonic() - began
        segment_id = options.segment.id
        if options.as_json:
            typer.echo(_forecast_json(forecast, segment_id, timezone, elapsed))
        else:
            text = _forecast_text(forecast, segment_id, timezone)
            typer.echo(text + f"\nrehearsed in {elapsed:.1f} s")
    finally:
        await real.aclose()


def _store_url(settings: Settings) -> URL:
    """The store's URL; a SQLite file must exist (reading must not create one)."""
    url = make_url(settings.resolved_database_url())
    database = url.database or ""
    is_file = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if is_file and not Path(database).exists():
        raise SimulationInputError(
            f"no journey store at {database}: set JOURNEY_DATABASE_URL, or deploy first"
        )
    return url


def _file_plan(journey: str) -> JourneyPlan | None:
    """The plan of a journey file (validated, its templates beside it); None for an id."""
    path = Path(journey)
    if path.suffix not in (".yaml", ".yml") and not path.is_file():
        return None
    if not path.is_file():
        raise SimulationInputError(f"unknown journey {journey!r}: no such file")
    definition = load_journey(path)
    templates = load_templates(
        path.parent / "templates", definition.templates(), channels_by_template(definition)
    )
    return JourneyPlan(definition, templates, str(path))


async def _deployed_plan(real: Store, journey: str) -> JourneyPlan:
    version = await real.latest_version(journey)
    if version is None:
        raise SimulationInputError(
            f"unknown journey {journey!r}: not deployed (journey deploy), and no such file"
        )
    return JourneyPlan.of_version(version)


# -- output ----------------------------------------------------------------------------------


def _local(at: datetime, zone: str) -> str:
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"


def _person_text(r: PersonRehearsal) -> str:
    lines = [
        f"{r.journey_id} {r.label} for {r.profile_id}, {_days((r.until - r.start).days)} "
        f"(times in {r.timezone}; nothing was sent); {_touches(r.past_touches)}"
    ]
    for entry in r.timeline:
        lines.append(f"{_local(entry.at, r.timezone)}  {entry.step or '':<12} {entry.text}")
    decisions: dict[str, int] = {}
    for entry in r.timeline:
        if entry.kind == "send" and "decision" in entry.data:
            decisions[entry.data["decision"]] = decisions.get(entry.data["decision"], 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in decisions.items()) or "none"
    lines.append(f"send attempts: {summary}; {r.messages_recorded} message(s) recorded")
    return "\n".join(lines)


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def _touches(count: int) -> str:
    return f"caps start from {count} earlier send(s) of the last 90 days"


def _person_json(r: PersonRehearsal, elapsed: float) -> str:
    document = {
        "journey_id": r.journey_id,
        "version": r.label,
        "profile_id": r.profile_id,
        "timezone": r.timezone,
        "start": r.start.astimezone(ZoneInfo(r.timezone)).isoformat(),
        "until": r.until.astimezone(ZoneInfo(r.timezone)).isoformat(),
        "entered": r.outcome,
        "status": r.status,
        "timeline": [
            {
                "at": entry.at.astimezone(ZoneInfo(r.timezone)).isoformat(),
                "kind": entry.kind,
                "step": entry.step,
                "text": entry.text,
                **entry.data,
            }
            for entry in r.timeline
        ],
        "messages_recorded": r.messages_recorded,
        "past_touches": r.past_touches,
        "elapsed_seconds": round(elapsed, 2),
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


_KINDS: tuple[Decision, ...] = ("sent", "deferred", "capped", "dropped", "failed")


def _forecast_text(f: Forecast, segment: str, timezone: str) -> str:
    refused = {k: v for k, v in f.entered.items() if k != "started"}
    others = ", ".join(f"{k} {v}" for k, v in sorted(refused.items()))
    lines = [
        f"{f.journey_id} {f.label} for segment {segment}: {f.sample} of {f.members} members "
        f"(seed {f.seed}), {_days(f.days)} from {_local(f.start, timezone)} ({timezone}); "
        f"nothing was sent; {_touches(f.past_touches)}",
        f"would enter: {f.entered.get('started', 0)}" + (f" (not: {others})" if others else ""),
        "day  date        " + "".join(f"{k:>9}" for k in _KINDS),
    ]
    for day in f.per_day:
        lines.append(f"{day.day:>3}  {day.date}  " + "".join(f"{day.counts[k]:>9}" for k in _KINDS))
    lines.append("total            " + "".join(f"{f.totals[k]:>9}" for k in _KINDS))
    if f.reasons:
        lines.append("held or refused by: " + ", ".join(f"{k} {v}" for k, v in f.reasons.items()))
    lines.append("at the horizon: " + ", ".join(f"{k} {v}" for k, v in sorted(f.statuses.items())))
    return "\n".join(lines)


def _forecast_json(f: Forecast, segment: str, timezone: str, elapsed: float) -> str:
    document: dict[str, Any] = {
        "journey_id": f.journey_id,
        "version": f.label,
        "segment": segment,
        "members": f.members,
        "sample": f.sample,
        "seed": f.seed,
        "timezone": timezone,
        "start": f.start.astimezone(ZoneInfo(timezone)).isoformat(),
        "days": f.days,
        "entered": f.entered,
        "per_day": [asdict(day) for day in f.per_day],
        "totals": f.totals,
        "reasons": f.reasons,
        "statuses": f.statuses,
        "past_touches": f.past_touches,
        "elapsed_seconds": round(elapsed, 2),
    }
    return json.dumps(document, ensure_ascii=False, indent=2)
