"""One journey's part of the report: the funnel, conversions and revenue with last-touch
attribution, experiments and holdout lift, from the store's aggregates
(``engine.store.analytics`` defines orders, conversions and last touch)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.analytics.experiments import read_experiment, read_lift
from engine.analytics.model import DayPoint, JourneyReport, StepRow, Touch
from engine.dsl.models import (
    BranchStep,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
)
from engine.store import Store
from engine.store.analytics import GoalSpec, JourneyFacts, LifecycleSpec

NO_TOUCH = "none"
"""Channel (and step, template) of orders with no message sent before them."""


async def journey_facts(
    store: Store,
    journey: Journey,
    lifecycle: LifecycleSpec,
    entered: tuple[datetime, datetime] | None = None,
    tier_of: Any = None,
) -> JourneyFacts:
    goal = journey.goal
    spec = None if goal is None else GoalSpec(goal.event, goal.within, goal.value)
    start, end = entered if entered else (None, None)
    return await store.journey_facts(
        journey.id, spec, lifecycle, entered_from=start, entered_before=end, tier_of=tier_of
    )


def journey_report(
    journey: Journey, facts: JourneyFacts, *, min_sample: int, sequential: bool = False
) -> JourneyReport:
    revenue_by_step: dict[str, float] = {}
    for t in facts.touches:
        if t.step is not None:
            revenue_by_step[t.step] = revenue_by_step.get(t.step, 0.0) + t.revenue
    steps = [
        StepRow(
            step=s.id,
            kind=step_kind(s),
            reached=facts.reached.get(s.id, (0, 0))[0],
            sent=facts.sends.get((s.id, "sent"), 0),
            suppressed=facts.sends.get((s.id, "suppressed"), 0)
            + facts.sends.get((s.id, "expired"), 0),
            failed=facts.sends.get((s.id, "failed"), 0),
            unknown=facts.sends.get((s.id, "unknown"), 0),
            exited=facts.exits.get(s.id, 0),
            converted=facts.reached.get(s.id, (0, 0))[1],
            revenue=revenue_by_step.get(s.id, 0.0),
        )
        for s in journey.steps
    ]
    experiments = []
    lifts = []
    for s in journey.steps:
        if not isinstance(s, SplitStep):
            continue
        outcomes = {v: out for (step, v), out in facts.arms.items() if step == s.id}
        # Runs of an earlier version may have landed in a variant this one no longer has.
        variants = [v.variant for v in s.split]
        variants += sorted(set(outcomes) - set(variants))
        experiments.append(
            read_experiment(s.id, variants, outcomes, min_sample=min_sample, sequential=sequential)
        )
        lift = read_lift(s.id, variants, outcomes)
        if lift is not None:
            lifts.append(lift)
    total = facts.total
    return JourneyReport(
        journey_id=journey.id,
        name=journey.name,
        goal_event=journey.goal.event if journey.goal else None,
        entered=total.people,
        active=facts.statuses.get("active", 0),
        converted=total.converted,
        orders=total.orders,
        revenue=total.revenue,
        steps=steps,
        experiments=experiments,
        lifts=lifts,
        suppression_reasons=dict(sorted(facts.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        last_touches=[
            Touch(
                step=t.step or NO_TOUCH,
                channel=t.channel or NO_TOUCH,
                template=t.template or NO_TOUCH,
                conversions=t.conversions,
                orders=t.orders,
                revenue=t.revenue,
            )
            for t in sorted(facts.touches, key=lambda t: (-t.revenue, -t.orders, t.step or ""))
        ],
        timeline=[DayPoint(d.day, d.sends, d.conversions, d.revenue) for d in facts.days],
        exit_reasons=_endings(facts.endings),
        orders_without_value=total.orders - total.valued
        if journey.goal and journey.goal.value
        else 0,
        revenue_property=journey.goal.value if journey.goal else None,
    )


def step_kind(step: Step) -> str:
    kinds: list[tuple[type, str]] = [
        (WaitStep, "wait"),
        (WaitForStep, "wait_for"),
        (BranchStep, "branch"),
        (SplitStep, "split"),
        (SendStep, "send"),
        (UpdateStep, "update"),
        (ExitStep, "exit"),
    ]
    return next((name for cls, name in kinds if isinstance(step, cls)), "step")


def _endings(endings: dict[tuple[str, str | None], int]) -> dict[str, int]:
    """How runs ended, ``status`` or ``status — reason`` (the exit step's ``reason``, the goal or
    ``exit_on`` event, the cap rule), most frequent first, then by name."""
    named = {
        f"{status} — {reason}" if reason else status: count
        for (status, reason), count in endings.items()
    }
    return dict(sorted(named.items(), key=lambda kv: (-kv[1], kv[0])))
