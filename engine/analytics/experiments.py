"""Each split read as an experiment against its control arm, and holdout lift.

The control is the variant named ``control`` or ``holdout``, else the split's first variant.
Per arm: people, conversions, the conversion rate with Wilson's interval, revenue per person
with its normal interval; per other arm, the difference from the control (Newcombe's interval
and the pooled z-test p-value for rates; the unequal-variance normal interval for revenue).

A winner is declared only when the interval of an arm's rate difference excludes zero and every
arm has at least ``min_sample`` people; otherwise the verdict says how many more people per arm
a 1-point difference needs (see :func:`engine.analytics.stats.people_per_arm`).

With ``sequential`` the intervals are always-valid confidence sequences (see
``engine.analytics.stats``), tightest at ``min_sample`` people per arm (twice that for a
difference), so the report can be read every day without inflating false winners.

Holdout lift (splits with a ``holdout`` or ``control`` arm): the other arms together against
it; incremental conversions = (treated rate - holdout rate) x treated people, incremental
revenue = (treated revenue per person - holdout's) x treated people, with the intervals of the
differences scaled the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from engine.analytics.model import Arm, Estimate, Experiment, Lift
from engine.analytics.stats import (
    Z95,
    Moments,
    difference,
    mean_difference,
    mean_interval,
    people_per_arm,
    proportions_p_value,
    sequence_rho,
    sequence_width,
    wilson,
)
from engine.store.analytics import Outcome

CONTROL_NAMES = ("control", "holdout")
MDE = 0.01
"""The difference the "not enough data" sentence sizes for: 1 percentage point."""
FALLBACK_BASELINE = 0.05
"""The baseline rate used for that size when the control has no conversions yet."""


def control_of(variants: Sequence[str]) -> str:
    for name in CONTROL_NAMES:
        if name in variants:
            return name
    return variants[0]


def read_experiment(
    step: str,
    variants: Sequence[str],
    outcomes: Mapping[str, Outcome],
    *,
    min_sample: int,
    sequential: bool = False,
) -> Experiment:
    """The experiment of one split: ``variants`` in the split's order, ``outcomes`` by variant
    (a variant nobody landed in has zero people)."""
    control = control_of(variants)
    empty = Outcome()
    base = outcomes.get(control, empty)
    arms: list[Arm] = []
    for variant in variants:
        out = outcomes.get(variant, empty)
        arms.append(
            _arm(variant, out, None if variant == control else base, min_sample, sequential)
        )
    winner, verdict = _verdict(arms, control, min_sample, base)
    return Experiment(
        step=step,
        control=control,
        arms=arms,
        winner=winner,
        verdict=verdict,
        sequential=sequential,
    )


def _moments(out: Outcome) -> Moments:
    return Moments(out.people, out.revenue, out.revenue_squares)


def _arm(
    variant: str, out: Outcome, base: Outcome | None, min_sample: int, sequential: bool
) -> Arm:
    n, k = out.people, out.converted
    rate_value = k / n if n else None
    if sequential:
        rate = _sequence_rate(k, n, min_sample)
        revenue_pp = _sequence_mean(_moments(out), min_sample)
    else:
        low, high = wilson(k, n)
        rate = Estimate(rate_value, low, high) if n else Estimate(None)
        revenue_pp = Estimate(*mean_interval(_moments(out)))
    arm = Arm(
        variant=variant,
        people=n,
        conversions=k,
        revenue=out.revenue,
        rate=rate,
        revenue_per_person=revenue_pp,
    )
    if base is None:
        return arm
    if n == 0 or base.people == 0:
        return _with(arm, Estimate(None), None, Estimate(None))
    a, b = (base.converted, base.people), (k, n)
    if sequential:
        rate_diff = _sequence_difference(a, b, min_sample)
    else:
        rate_diff = Estimate(*difference(a, b))
    delta, d_low, d_high, _ = mean_difference(_moments(base), _moments(out))
    if sequential and delta is not None:
        d_low, d_high = _sequence_mean_difference(_moments(base), _moments(out), min_sample)
    return _with(arm, rate_diff, proportions_p_value(a, b), Estimate(delta, d_low, d_high))


def _with(arm: Arm, rate_diff: Estimate, p: float | None, revenue_diff: Estimate) -> Arm:
    return dataclasses.replace(
        arm, rate_difference=rate_diff, p_value=p, revenue_difference=revenue_diff
    )


def _verdict(
    arms: list[Arm], control: str, min_sample: int, base: Outcome
) -> tuple[str | None, str]:
    others = [a for a in arms if a.variant != control]
    smallest = min(a.people for a in arms)
    if smallest < min_sample:
        baseline = base.converted / base.people if base.people and base.converted else None
        need = people_per_arm(min(max(baseline or FALLBACK_BASELINE, 0.001), 0.98), MDE)
        more = max(need, min_sample) - smallest
        return None, (
            f"not enough data yet: about {more:,} more people per arm for a 1-point "
            f"difference (every arm needs at least {min_sample:,}; the smallest has {smallest:,})"
        )
    better = [
        a
        for a in others
        if a.rate_difference and a.rate_difference.low is not None and a.rate_difference.low > 0
    ]
    if better:
        best = max(better, key=_gain)
        d = best.rate_difference
        assert d is not None and d.value is not None and d.low is not None and d.high is not None
        return best.variant, (
            f"{best.variant} beats {control} by {100 * d.value:.1f} pts "
            f"[{100 * d.low:.1f}, {100 * d.high:.1f}]"
        )
    worse = [
        a
        for a in others
        if a.rate_difference and a.rate_difference.high is not None and a.rate_difference.high < 0
    ]
    if others and len(worse) == len(others):
        return control, f"{control} beats every other arm (each difference's interval is below 0)"
    return None, "no clear difference: every interval of the difference includes 0"


def _gain(arm: Arm) -> float:
    d = arm.rate_difference
    return d.value if d is not None and d.value is not None else 0.0


# -- always-valid intervals ------------------------------------------------------------------


def _sequence_rate(k: int, n: int, min_sample: int) -> Estimate:
    if n == 0:
        return Estimate(None)
    p = k / n
    half = math.sqrt(p * (1 - p)) * sequence_width(n, sequence_rho(min_sample))
    return Estimate(p, max(0.0, p - half), min(1.0, p + half))


def _sequence_mean(sample: Moments, min_sample: int) -> Estimate:
    mean, variance = sample.mean, sample.variance
    if mean is None or variance is None:
        return Estimate(mean)
    half = math.sqrt(variance) * sequence_width(sample.n, sequence_rho(min_sample))
    return Estimate(mean, mean - half, mean + half)


def _sequence_difference(a: tuple[int, int], b: tuple[int, int], min_sample: int) -> Estimate:
    (ka, na), (kb, nb) = a, b
    pa, pb = ka / na, kb / nb
    per_unit = pa * (1 - pa) / na + pb * (1 - pb) / nb
    return _sequence_delta(pb - pa, per_unit, na + nb, min_sample)


def _sequence_mean_difference(
    a: Moments, b: Moments, min_sample: int
) -> tuple[float | None, float | None]:
    if a.variance is None or b.variance is None or a.mean is None or b.mean is None:
        return None, None
    est = _sequence_delta(
        b.mean - a.mean, a.variance / a.n + b.variance / b.n, a.n + b.n, min_sample
    )
    return est.low, est.high


def _sequence_delta(delta: float, variance: float, t: int, min_sample: int) -> Estimate:
    """A difference with estimated variance ``variance`` after ``t`` people in all: the
    per-person standard deviation is sqrt(t * variance)."""
    half = math.sqrt(t * variance) * sequence_width(t, sequence_rho(2 * min_sample))
    return Estimate(delta, delta - half, delta + half)


# -- holdout lift ----------------------------------------------------------------------------


def read_lift(step: str, variants: Sequence[str], outcomes: Mapping[str, Outcome]) -> Lift | None:
    """What messaging at all did in this split; None without a holdout/control arm."""
    holdout = next((name for name in CONTROL_NAMES if name in variants), None)
    if holdout is None:
        return None
    empty = Outcome()
    base = outcomes.get(holdout, empty)
    treated = [outcomes.get(v, empty) for v in variants if v != holdout]
    t = Outcome(
        people=sum(o.people for o in treated),
        converted=sum(o.converted for o in treated),
        orders=sum(o.orders for o in treated),
        valued=sum(o.valued for o in treated),
        revenue=sum(o.revenue for o in treated),
        revenue_squares=sum(o.revenue_squares for o in treated),
    )
    if t.people == 0 or base.people == 0:
        na = Estimate(None)
        return Lift(step, t.people, base.people, na, na)
    n = t.people
    delta, low, high = difference((base.converted, base.people), (t.converted, t.people))
    conversions = Estimate(delta * n, low * n, high * n)
    mean_delta, mean_low, mean_high, _ = mean_difference(_moments(base), _moments(t))
    revenue = Estimate(
        None if mean_delta is None else mean_delta * n,
        None if mean_low is None else mean_low * n,
        None if mean_high is None else mean_high * n,
    )
    return Lift(step, t.people, base.people, conversions, revenue)


__all__ = ["Z95", "control_of", "read_experiment", "read_lift"]
