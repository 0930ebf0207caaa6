"""Confidence intervals against textbook values (Newcombe 1998, Table I and II examples)."""

from __future__ import annotations

import pytest

from engine.analytics.stats import difference, wilson


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
