"""The report's statistics against textbook values (Newcombe 1998) and statsmodels."""

from __future__ import annotations

import math

import pytest

from engine.analytics.stats import (
    Z95,
    Moments,
    difference,
    mean_difference,
    mean_interval,
    people_per_arm,
    proportions_p_value,
    sample_size,
    sequence_rho,
    sequence_width,
    wilson,
)


def test_wilson_matches_newcombes_worked_examples() -> None:
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)


def test_newcombe_difference_matches_the_published_interval() -> None:
    # Newcombe (1998) example: 56/70 vs 48/80 -> difference 0.2, interval 0.0524 to 0.3339.
    delta, low, high = difference((48, 80), (56, 70))
    assert (delta, low, high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_empty_groups_are_fully_uncertain() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


# -- against statsmodels, on fixed cases, to 1e-9 -------------------------------------------

CASES = [(81, 263), (15, 148), (0, 20), (20, 20), (1, 1), (48, 80), (56, 70), (523, 10_000)]
PAIRS = [((48, 80), (56, 70)), ((15, 148), (81, 263)), ((0, 20), (3, 25)), ((50, 1000), (62, 1000))]
REVENUE = [
    ([0.0] * 7 + [99.0, 59.0, 199.0], [0.0] * 5 + [99.0, 99.0, 199.0, 59.0, 20.5, 0.0]),
    ([12.5, 0.0, 3.0, 0.0, 0.0, 80.0, 45.0], [0.0, 0.0, 0.0, 10.0, 0.0]),
]


def moments(values: list[float]) -> Moments:
    return Moments(len(values), sum(values), sum(v * v for v in values))


@pytest.mark.parametrize(("k", "n"), CASES)
def test_wilson_equals_statsmodels(k: int, n: int) -> None:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, method="wilson")
    assert wilson(k, n) == pytest.approx((max(0.0, low), min(1.0, high)), abs=1e-9)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_newcombe_difference_equals_statsmodels(a: tuple[int, int], b: tuple[int, int]) -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = confint_proportions_2indep(b[0], b[1], a[0], a[1], method="newcomb")
    delta, my_low, my_high = difference(a, b)
    assert (my_low, my_high) == pytest.approx((low, high), abs=1e-9)
    assert delta == pytest.approx(b[0] / b[1] - a[0] / a[1], abs=1e-12)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_p_value_equals_the_pooled_z_test_of_statsmodels(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    from statsmodels.stats.proportion import proportions_ztest

    _, p = proportions_ztest([b[0], a[0]], [b[1], a[1]])
    assert proportions_p_value(a, b) == pytest.approx(p, abs=1e-9)


def test_p_value_is_undefined_for_an_empty_arm_or_no_variance() -> None:
    assert proportions_p_value((0, 0), (3, 10)) is None
    assert proportions_p_value((0, 10), (0, 12)) is None


@pytest.mark.parametrize(("a", "b"), REVENUE)
def test_revenue_intervals_equal_statsmodels(a: list[float], b: list[float]) -> None:
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    mean, low, high = mean_interval(moments(b))
    assert mean == pytest.approx(sum(b) / len(b), abs=1e-12)
    assert (low, high) == pytest.approx(DescrStatsW(b).zconfint_mean(), abs=1e-9)
    delta, d_low, d_high, p = mean_difference(moments(a), moments(b))
    assert delta == pytest.approx(sum(b) / len(b) - sum(a) / len(a), abs=1e-12)
    compare = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    assert (d_low, d_high) == pytest.approx(compare.zconfint_diff(usevar="unequal"), abs=1e-9)
    assert p == pytest.approx(compare.ztest_ind(usevar="unequal")[1], abs=1e-9)


def test_revenue_of_fewer_than_two_people_has_no_interval() -> None:
    assert mean_interval(moments([5.0])) == (5.0, None, None)
    assert mean_interval(moments([])) == (None, None, None)
    assert mean_difference(moments([]), moments([1.0, 2.0])) == (None, None, None, None)


@pytest.mark.parametrize(
    ("baseline", "mde", "power"), [(0.05, 0.01, 0.8), (0.10, 0.02, 0.9), (0.30, -0.05, 0.8)]
)
def test_people_per_arm_equals_statsmodels(baseline: float, mde: float, power: float) -> None:
    from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

    n = samplesize_proportions_2indep_onetail(mde, baseline, power)
    assert sample_size(baseline, mde, power=power) == pytest.approx(n, abs=1e-9)
    assert people_per_arm(baseline, mde, power=power) == math.ceil(n)


def test_people_per_arm_refuses_impossible_rates() -> None:
    for baseline, mde in [(0.0, 0.01), (0.995, 0.01), (0.05, 0.0)]:
        with pytest.raises(ValueError):
            people_per_arm(baseline, mde)


def test_the_confidence_sequence_is_wider_than_the_fixed_interval_and_shrinks() -> None:
    rho = sequence_rho(1000)
    widths = [sequence_width(t, rho) for t in (100, 1000, 10_000, 100_000)]
    assert widths == sorted(widths, reverse=True)
    for t, w in zip((100, 1000, 10_000, 100_000), widths, strict=True):
        assert w > Z95 / math.sqrt(t)  # always-valid costs width at every t
    # at the planned size it costs well under twice the fixed width (Howard et al. 2021)
    assert widths[1] < 2 * Z95 / math.sqrt(1000)
    # the formula by hand at t = 1000
    r2 = rho * rho
    by_hand = math.sqrt(
        2 * (1000 * r2 + 1) / (1000**2 * r2) * math.log(math.sqrt(1000 * r2 + 1) / 0.05)
    )
    assert widths[1] == pytest.approx(by_hand, rel=1e-12)
