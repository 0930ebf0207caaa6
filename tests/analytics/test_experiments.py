"""Experiment verdicts: a winner only with an interval clear of zero and enough people in every
arm; otherwise how many more people a 1-point difference needs."""

from __future__ import annotations

import pytest

from engine.analytics.experiments import read_experiment, read_lift
from engine.analytics.stats import people_per_arm
from engine.store.analytics import Outcome


def arm(people: int, converted: int, revenue: float = 0.0) -> Outcome:
    # every converter spent the same amount: squares follow
    each = revenue / converted if converted else 0.0
    return Outcome(people, converted, converted, converted, revenue, converted * each * each)


def test_a_clear_difference_with_enough_people_declares_a_winner() -> None:
    x = read_experiment(
        "test", ["A", "B"], {"A": arm(2000, 100), "B": arm(2000, 160)}, min_sample=100
    )
    assert x.control == "A" and x.winner == "B"
    assert x.verdict.startswith("B beats A by 3.0 pts [")
    b = x.arms[1]
    assert b.rate_difference is not None and b.rate_difference.low is not None
    assert b.rate_difference.low > 0 and b.p_value is not None and b.p_value < 0.05


def test_the_same_difference_in_a_small_sample_is_not_enough() -> None:
    x = read_experiment("test", ["A", "B"], {"A": arm(50, 1), "B": arm(50, 8)}, min_sample=100)
    assert x.winner is None
    more = people_per_arm(0.02, 0.01) - 50
    assert x.verdict.startswith(f"not enough data yet: about {more:,} more people per arm")


def test_no_clear_difference() -> None:
    x = read_experiment(
        "test", ["A", "B"], {"A": arm(1000, 50), "B": arm(1000, 52)}, min_sample=100
    )
    assert x.winner is None and x.verdict.startswith("no clear difference")


def test_holdout_is_the_control_and_an_empty_arm_is_n_a() -> None:
    x = read_experiment(
        "test", ["A", "B", "holdout"], {"A": arm(10, 1), "holdout": arm(5, 0)}, min_sample=1
    )
    assert x.control == "holdout"
    b = next(a for a in x.arms if a.variant == "B")
    assert (b.people, b.rate.value) == (0, None)
    assert b.rate_difference is not None and b.rate_difference.value is None
    assert "not enough data yet" in x.verdict  # an arm with nobody never reaches the minimum


def test_sequential_intervals_are_wider_than_fixed_ones() -> None:
    outcomes = {"A": arm(3000, 150, 15000.0), "B": arm(3000, 200, 20000.0)}
    fixed = read_experiment("t", ["A", "B"], outcomes, min_sample=100)
    always = read_experiment("t", ["A", "B"], outcomes, min_sample=100, sequential=True)
    f, s = fixed.arms[1].rate_difference, always.arms[1].rate_difference
    assert f is not None and s is not None and f.low is not None and s.low is not None
    assert s.value == f.value and s.low < f.low and always.sequential


def test_holdout_lift_is_scaled_to_the_treated() -> None:
    lift = read_lift(
        "test",
        ["A", "B", "holdout"],
        {"A": arm(400, 40, 4000.0), "B": arm(600, 60, 6000.0), "holdout": arm(100, 5, 500.0)},
    )
    assert lift is not None
    assert (lift.treated_people, lift.holdout_people) == (1000, 100)
    assert lift.incremental_conversions.value == pytest.approx((0.10 - 0.05) * 1000)
    assert lift.incremental_revenue.value == pytest.approx((10.0 - 5.0) * 1000)
    low, high = lift.incremental_conversions.low, lift.incremental_conversions.high
    assert low is not None and high is not None and low < 50 < high
    assert read_lift("test", ["A", "B"], {}) is None
