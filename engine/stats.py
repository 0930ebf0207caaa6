"""Honest experiment read-outs: conversion rates with 95% confidence intervals.

Wilson score intervals for one rate (sound for small groups and rates near 0 or 1), and
Newcombe's hybrid score interval for the difference of two rates (no pooling assumption).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% interval for a rate ``successes / n``; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(a: tuple[int, int], b: tuple[int, int]) -> tuple[float, float, float]:
    """(rate_b - rate_a, low, high): Newcombe's 95% interval for the difference of two rates,
    each given as (successes, n)."""
    (sa, na), (sb, nb) = a, b
    pa = sa / na if na else 0.0
    pb = sb / nb if nb else 0.0
    la, ua = wilson(sa, na)
    lb, ub = wilson(sb, nb)
    delta = pb - pa
    low = delta - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = delta + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    return delta, low, high
