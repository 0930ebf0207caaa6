"""The whole report in one call: every journey's funnel, conversions, revenue, experiments and
lift, the nine numbers, the fatigue curve and the channel effect.

    report = await build_report(store, journeys, policy=policy, tiers=tiers)

The renderers (``engine.analytics.text``, the HTML page) and the API only read the records of
``engine.analytics.model`` it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case

from engine.analytics.channels import channel_effect
from engine.analytics.fatigue import fatigue_curve
from engine.analytics.journeys import journey_facts, journey_report
from engine.analytics.kpis import lifecycle_of, nine_numbers
from engine.analytics.model import Report
from engine.analytics.period import Period
from engine.conditions.sql import SqlCompiler, prepare
from engine.dsl.conditions import TierCondition
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.store import Store

KPI_DAYS = 30
"""Without a period, the nine numbers cover the last 30 days (today included)."""
FATIGUE_WINDOW = timedelta(days=7)


async def build_report(
    store: Store,
    journeys: Sequence[Journey],
    *,
    policy: Policy,
    tiers: Tiers,
    period: Period | tuple[date, date] | None = None,
    sequential: bool = False,
    now: datetime | None = None,
) -> Report:
    """The report of ``journeys`` (people who entered in ``period``, or ever), with the nine
    numbers for ``period`` (default: the last 30 days) against the period before, and the
    fatigue curve over the 7 days before ``now`` (or before the period's end).

    ``period`` is a :class:`Period` or (first day, last day), both included, in the policy's
    timezone. ``sequential`` turns the experiments' intervals into always-valid ones."""
    if isinstance(period, tuple):
        period = Period(*period)
    now = now or datetime.now(UTC)
    lifecycle = lifecycle_of(tiers)
    entered = period.instants(policy.timezone) if period else None
    min_sample = policy.experiments.min_sample
    tier_of = await tier_expression(store, tiers, now)
    kpi_period = period or _last_days(now, policy.timezone, KPI_DAYS)
    fatigue_end = min(now, entered[1]) if entered else now
    # The journeys' aggregates and the whole base's (nine numbers, fatigue) are read at once, on
    # connections of their own: the page waits for the slowest, not for their sum.
    whole_base = asyncio.gather(
        nine_numbers(store, tiers, kpi_period, policy.timezone, compare=True),
        fatigue_curve(store, policy, fatigue_end, FATIGUE_WINDOW),
    )
    each_journey = asyncio.gather(
        *(journey_facts(store, j, lifecycle, entered, tier_of) for j in journeys)
    )
    (kpis, fatigue), facts = await asyncio.gather(whole_base, each_journey)
    reports = [
        journey_report(j, f, min_sample=min_sample, sequential=sequential)
        for j, f in zip(journeys, facts, strict=True)
    ]
    return Report(
        generated_at=now,
        journeys=reports,
        kpis=kpis,
        fatigue=fatigue,
        channel_effect=[
            *channel_effect(f.channel_stage for f in facts),
            *channel_effect((f.channel_tier for f in facts), "tier", [*tiers.tier_ids(), "none"]),
        ],
        period=(period.start, period.end) if period else None,
    )


async def tier_expression(store: Store, tiers: Tiers, now: datetime) -> Any:
    """SQL over ``profiles`` giving each person's member tier at ``now`` (NULL: none), compiled
    from the tier rules by the segment compiler; None without tiers."""
    if not tiers.tiers:
        return None
    whens = []
    for tier in tiers.tiers:
        condition = TierCondition(tier=[tier.id])
        evaluation = await prepare(store, condition, now, tiers)
        whens.append((SqlCompiler(store.dialect, evaluation).where(condition), tier.id))
    return case(*whens)


def _last_days(now: datetime, timezone: str, days: int) -> Period:
    today = now.astimezone(ZoneInfo(timezone)).date()
    return Period(today - timedelta(days=days - 1), today)
