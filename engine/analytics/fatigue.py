"""The fatigue curve: unsubscribe rate against marketing touches received in a window.

Everyone with a profile is grouped by the marketing messages sent to them in the window that
ends at the report's time (0, 1, 2, ..., and ``n+`` for the last group); per group: people,
unsubscribes (a channel's consent withdrawn, or an ``unsubscribed`` event, in the window),
complaints (a ``complained`` event, where a provider reports them) and the unsubscribe rate with
Wilson's interval.

The **threshold** is the smallest touch count whose rate rises clearly above the baseline, the
people with 0 or 1 touches together: clearly means the lower bound of its interval lies above
the upper bound of the baseline's. It is shown next to the policy's global cap for the same
window, which is what it should set.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from engine.analytics.model import Estimate, Fatigue, FatigueRow
from engine.analytics.stats import wilson
from engine.dsl.durations import format_duration
from engine.dsl.policy import Policy
from engine.store import Store
from engine.store.population import TouchGroupFacts

LAST_GROUP = 10
"""Touch counts from this one on share the last group (``10+``)."""


async def fatigue_curve(
    store: Store, policy: Policy, now: datetime, window: timedelta = timedelta(days=7)
) -> Fatigue:
    facts = await store.fatigue_facts(now - window, now, last_group=LAST_GROUP)
    return curve(facts, window, policy)


def curve(facts: list[TouchGroupFacts], window: timedelta, policy: Policy) -> Fatigue:
    rows = [_row(f) for f in facts]
    return Fatigue(
        window=window,
        rows=rows,
        threshold=_threshold(facts),
        policy_cap=policy_cap(policy, window),
    )


def _row(f: TouchGroupFacts) -> FatigueRow:
    low, high = wilson(f.unsubscribed, f.people)
    return FatigueRow(
        touches=f"{f.touches}+" if f.touches >= LAST_GROUP else str(f.touches),
        people=f.people,
        unsubscribed=f.unsubscribed,
        complained=f.complained,
        rate=Estimate(f.unsubscribed / f.people if f.people else None, low, high),
    )


def _threshold(facts: list[TouchGroupFacts]) -> str | None:
    base = [f for f in facts if f.touches <= 1]
    people = sum(f.people for f in base)
    if people == 0:
        return None
    _, base_high = wilson(sum(f.unsubscribed for f in base), people)
    for f in facts:
        if f.touches <= 1 or f.people == 0:
            continue
        low, _ = wilson(f.unsubscribed, f.people)
        if low > base_high:
            return f"{f.touches}+" if f.touches >= LAST_GROUP else str(f.touches)
    return None


def policy_cap(policy: Policy, window: timedelta) -> str | None:
    """The most touches the global caps allow in ``window``, e.g. "4 per 7d" (from the tightest
    rule: a rule over a shorter window allows ``max`` per started window of its length)."""
    best: tuple[int, str] | None = None
    for rule in policy.caps.global_:
        allowed = rule.max * max(1, math.ceil(window / rule.per))
        label = f"{rule.max} per {span_text(rule.per)}"
        if best is None or allowed < best[0]:
            best = (allowed, label)
    if best is None:
        return None
    allowed, label = best
    span = span_text(window)
    return label if label.endswith(f" per {span}") else f"{allowed} per {span} ({label})"


def span_text(value: timedelta) -> str:
    """Whole days as days ("7d", not "1w"), as the policy file writes them."""
    if value and not value % timedelta(days=1):
        return f"{value // timedelta(days=1)}d"
    return format_duration(value)
