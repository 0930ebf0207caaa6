"""``journey report``, ``journey kpis``, ``journey fatigue`` and ``journey experiment size``:
measuring journeys as a retail analyst would (the numbers come from ``engine.analytics``).

A malformed ``--from`` / ``--to`` / ``--window`` / ``--baseline`` / ``--mde`` is a usage error
naming the flag (exit code 2); an unknown journey or a broken policy file is one line on stderr
and exit code 1.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from engine.analytics.period import Period, PeriodError, parse_day
from engine.analytics.stats import people_per_arm
from engine.cli.stores import open_store
from engine.dsl.durations import parse_duration
from engine.dsl.errors import DslError
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.settings import Settings

T = TypeVar("T")

experiment_app = typer.Typer(help="Plan experiments.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``report``, ``kpis``, ``fatigue`` and ``experiment`` to ``app``."""
    app.command("report")(report)
    app.command("kpis")(kpis)
    app.command("fatigue")(fatigue)
    app.add_typer(experiment_app, name="experiment")
    experiment_app.command("size")(size)


def _run(coro: Awaitable[T]) -> T:
    from engine.services.report import UnknownJourney

    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except (DslError, UnknownJourney) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def _rules(settings: Settings) -> tuple[Policy, Tiers]:
    from engine.caps.factory import load_contact_policy
    from engine.runner import load_member_tiers

    return load_contact_policy(settings), load_member_tiers(settings) or Tiers()


def _day(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return parse_day(text, flag)
    except PeriodError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def _period(start: str | None, end: str | None, *, required: bool) -> Period | None:
    first, last = _day(start, "--from"), _day(end, "--to")
    if first is None and last is None and not required:
        return None
    if first is None:
        raise typer.BadParameter("give the first day of the period", param_hint="--from")
    if last is None:
        raise typer.BadParameter("give the last day of the period", param_hint="--to")
    try:
        return Period(first, last)
    except PeriodError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to") from None


FromOption = Annotated[
    str | None, typer.Option("--from", help="first day of the period, YYYY-MM-DD")
]
ToOption = Annotated[str | None, typer.Option("--to", help="last day of the period (included)")]


def report(
    journey_ids: Annotated[list[str] | None, typer.Argument(help="default: every journey")] = None,
    start: FromOption = None,
    end: ToOption = None,
    sequential: Annotated[
        bool, typer.Option(help="always-valid intervals (may be read every day)")
    ] = False,
    html: Annotated[
        Path | None, typer.Option(help="write the report as one self-contained HTML page here")
    ] = None,
    link: Annotated[
        bool, typer.Option(help="print a signed link to the report served by the API")
    ] = False,
    valid_for: Annotated[str, typer.Option(help="how long the link works: 12h, 7d, ...")] = "1d",
) -> None:
    """Each journey's funnel, conversions and revenue by last touch, experiments with verdicts,
    holdout lift; then the channel effect, the nine numbers and the fatigue curve.

    With --html, write all of it as one page; with --link, print a link that opens it in a
    browser from the API (JOURNEY_PUBLIC_URL) until it expires."""
    from engine.analytics.text import format_report
    from engine.cli import report_cmd
    from engine.services.report import journeys_report

    period = _period(start, end, required=False)
    settings = Settings()
    if html is not None:
        written = _run(report_cmd.write_html(settings, journey_ids, html, period, sequential))
        typer.echo(f"report written to {written}")
    if link:
        typer.echo(_run(report_cmd.link(settings, journey_ids, valid_for)))
    if html is not None or link:
        return

    async def go() -> str:
        policy, tiers = _rules(settings)
        async with open_store(settings) as store:
            built = await journeys_report(
                store, journey_ids, policy=policy, tiers=tiers, period=period, sequential=sequential
            )
        return format_report(built)

    typer.echo(_run(go()))


def kpis(
    start: FromOption = None,
    end: ToOption = None,
    compare: Annotated[
        str, typer.Option(help="'previous': the period of the same length just before; 'none'")
    ] = "previous",
) -> None:
    """The nine numbers: traffic, conversion rate and average order value of new, returning and
    dormant customers over a period (definitions in the README)."""
    from engine.analytics.kpis import nine_numbers
    from engine.analytics.text import format_kpis

    if compare not in ("previous", "none"):
        raise typer.BadParameter(
            f"expected 'previous' or 'none', got {compare!r}", param_hint="--compare"
        )
    period = _period(start, end, required=True)
    assert period is not None
    settings = Settings()

    async def go() -> str:
        policy, tiers = _rules(settings)
        async with open_store(settings) as store:
            numbers = await nine_numbers(
                store, tiers, period, policy.timezone, compare=compare == "previous"
            )
        return format_kpis(numbers)

    typer.echo(_run(go()))


def fatigue(
    window: Annotated[str, typer.Option(help="touches counted over this window, e.g. 7d")] = "7d",
    at: Annotated[
        str | None, typer.Option(help="the window ends at the start of this day (default: now)")
    ] = None,
) -> None:
    """Unsubscribe (and complaint) rate by marketing touches received in the window, the touch
    count where it rises clearly, and the policy's global cap."""
    from engine.analytics.fatigue import fatigue_curve
    from engine.analytics.text import format_fatigue

    try:
        span = parse_duration(window)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--window") from None
    day = _day(at, "--at")
    settings = Settings()

    async def go() -> str:
        policy, _ = _rules(settings)
        end = datetime.now(UTC)
        if day is not None:
            end = Period(day, day).instants(policy.timezone)[0]
        async with open_store(settings) as store:
            curve = await fatigue_curve(store, policy, end, span)
        return format_fatigue(curve)

    typer.echo(_run(go()))


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|pts?)?\s*$")


def _rate(text: str, flag: str, *, baseline: float | None = None) -> float:
    """``5%`` or ``0.05``; for --mde also ``1pt`` (percentage points) and ``10%`` (relative to
    the baseline)."""
    match = _RATE.match(text)
    if not match:
        raise typer.BadParameter(
            f"expected a rate such as 5% or 0.05{' or 1pt' if baseline is not None else ''}, "
            f"got {text!r}",
            param_hint=flag,
        )
    number, unit = float(match.group(1)), match.group(2)
    if unit and unit.startswith("pt"):
        if baseline is None:
            raise typer.BadParameter("points are for --mde; write 5%", param_hint=flag)
        return number / 100
    if unit == "%":
        return number / 100 * (baseline if baseline is not None else 1)
    return number


def size(
    baseline: Annotated[str, typer.Option(help="the control's conversion rate, e.g. 5%")],
    mde: Annotated[
        str, typer.Option(help="smallest difference worth finding: 1pt (points) or 10% (relative)")
    ],
    power: Annotated[float, typer.Option(help="chance of finding it when it is there")] = 0.8,
    alpha: Annotated[float, typer.Option(help="false-positive rate, two-sided")] = 0.05,
) -> None:
    """People per arm for a two-arm experiment to detect a difference in conversion rate."""
    base = _rate(baseline, "--baseline")
    diff = _rate(mde, "--mde", baseline=base)
    if not 0 < alpha < 1:
        raise typer.BadParameter("expected a level between 0 and 1", param_hint="--alpha")
    try:
        n = people_per_arm(base, diff, power=power, alpha=alpha)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mde") from None
    typer.echo(
        f"{n:,} people per arm to detect {100 * base:g}% -> {100 * (base + diff):g}% "
        f"({100 * diff:+g} pts) with power {power:g} at a two-sided {alpha:g} level"
    )


__all__ = ["register"]
