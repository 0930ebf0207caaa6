"""``journey status``: what a journey has spent of its budgets and how it is doing against its
target.

Budgets are read from the cap service's Redis (what is reserved and not given back, so the
numbers match what the next send is checked against); conversions and revenue come from the
report (`journeys_report`: conversions from the event store, inside the goal window).

Pace: the rate so far is what has been reached since the journey's first deploy, per unit of
time; the projection at the due date (the end of ``by``, midnight after it in the policy's
timezone) is ``reached + rate * time left``. The verdict compares the projection with the
target: at least 10% above it is ``ahead``, from 90% up ``on track``, below that ``behind``. Once
the due date has passed, it says ``met`` or ``missed``. Before a tenth of an hour has passed
there is no rate yet (``too early``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from engine.caps.budgets import BudgetUsage, budget_usage, budgets_for
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.services.anomalies import Anomaly, find_anomalies
from engine.services.report import deployed_journeys, journeys_report
from engine.store import Store, VersionNotFound

Metric = Literal["conversions", "revenue"]
Pace = Literal["ahead", "on track", "behind", "met", "missed", "too early"]
AHEAD = 1.1
ON_TRACK = 0.9
_SETTLING = timedelta(minutes=6)


@dataclass(frozen=True)
class BudgetStatus:
    scope: str
    max_sends: int | None
    max_value: int | None
    used: BudgetUsage


@dataclass(frozen=True)
class TargetProgress:
    metric: Metric
    goal: float
    reached: float
    projected: float | None
    """At the due date, from the rate so far (None: too early to say)."""
    pace: Pace


@dataclass(frozen=True)
class JourneyStatus:
    journey_id: str
    name: str
    budgets: list[BudgetStatus]
    targets: list[TargetProgress]
    due: date | None
    anomalies: list[Anomaly] = field(default_factory=list)
    """Rates of the last hour / day off the journey's own baseline (``services.anomalies``)."""


def pace(
    reached: float, goal: float, started: datetime, now: datetime, due: datetime
) -> tuple[float | None, Pace]:
    """The projection at ``due`` from the rate since ``started``, and the verdict."""
    if now >= due:
        return reached, "met" if reached >= goal else "missed"
    elapsed = now - started
    if elapsed < _SETTLING:
        return None, "too early"
    projected = reached + reached / elapsed.total_seconds() * (due - now).total_seconds()
    if projected >= goal * AHEAD:
        return projected, "ahead"
    return projected, "on track" if projected >= goal * ON_TRACK else "behind"


async def journey_status(
    store: Store,
    redis: aioredis.Redis,
    journey_id: str,
    *,
    policy: Policy,
    tiers: Tiers,
    now: datetime,
) -> JourneyStatus:
    """Raises UnknownJourney when the journey was never deployed."""
    [journey] = await deployed_journeys(store, [journey_id])
    budgets = [
        BudgetStatus(
            limit.scope, limit.max_sends, limit.max_value, await budget_usage(redis, limit.scope)
        )
        for limit in budgets_for(policy, journey.id, journey.budget, tuple(journey.tags))
    ]
    anomalies = await find_anomalies(store, journey.id, now)
    target = journey.target
    if target is None:
        return JourneyStatus(journey.id, journey.name, budgets, [], None, anomalies)
    report = await journeys_report(store, [journey.id], policy=policy, tiers=tiers, now=now)
    [measured] = report.journeys
    try:
        started = (await store.get_version(journey.id, 1)).deployed_at
    except VersionNotFound:
        started = now
    zone = ZoneInfo(policy.timezone)
    due = datetime.combine(target.by + timedelta(days=1), time(), zone)
    wanted: list[tuple[Metric, float | None, float]] = [
        ("conversions", target.conversions, float(measured.converted)),
        ("revenue", target.revenue, float(measured.revenue)),
    ]
    targets = []
    for metric, goal, reached in wanted:
        if goal is not None:
            projected, verdict = pace(reached, float(goal), started, now, due)
            targets.append(TargetProgress(metric, float(goal), reached, projected, verdict))
    return JourneyStatus(journey.id, journey.name, budgets, targets, target.by, anomalies)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def render(status: JourneyStatus) -> list[str]:
    """The status as lines for a terminal."""
    lines = [f"{status.journey_id} — {status.name}"]
    if not status.budgets:
        lines.append("budget: none")
    for budget in status.budgets:
        parts = []
        if budget.max_sends is not None:
            left = budget.max_sends - budget.used.sends
            parts.append(f"sends {budget.used.sends:,} used of {budget.max_sends:,}, {left:,} left")
        if budget.max_value is not None:
            left = budget.max_value - budget.used.value
            parts.append(f"value {budget.used.value:,} used of {budget.max_value:,}, {left:,} left")
        lines.append(f"budget {budget.scope}: " + "; ".join(parts))
    if status.due is None:
        lines.append("target: none")
    for progress in status.targets:
        share = progress.reached / progress.goal
        line = (
            f"target {progress.metric}: {_number(progress.reached)} of {_number(progress.goal)} "
            f"({share:.0%}) by {status.due}"
        )
        if progress.projected is not None and progress.pace not in ("met", "missed"):
            line += f"; projected {_number(progress.projected)}"
        lines.append(f"{line} — {progress.pace}")
    if not status.anomalies:
        lines.append("anomalies: none in the last hour or day")
    for anomaly in status.anomalies:
        lines.append(
            f"anomaly: {anomaly.rate} rate of the last {anomaly.window} "
            f"{anomaly.value:.1%} ({anomaly.count} of {anomaly.sample}) against "
            f"{anomaly.baseline:.1%} the week before (z {anomaly.z})"
        )
    return lines
