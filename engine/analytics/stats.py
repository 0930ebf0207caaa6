"""The statistics of the report, in plain Python (no numpy or scipy at run time).

- One rate: Wilson's score interval (sound for small groups and rates near 0 or 1).
- Difference of two rates: Newcombe's hybrid score interval (method 10 of Newcombe 1998, no
  pooling assumption) and the two-sided pooled z-test p-value.
- Means (revenue per person), from sufficient statistics (n, sum, sum of squares): the normal
  (z) interval of the mean and of the difference of two means with unequal variances
  (Welch's standard error), and its two-sided z-test p-value. These are large-sample intervals,
  which is why no winner is declared below the policy's ``experiments.min_sample``.
- People per arm to detect a difference: the normal approximation with the pooled variance under
  the null and the unpooled one under the alternative (Fleiss, Levin & Paik 2003, eq. 4.14; what
  statsmodels' ``samplesize_proportions_2indep_onetail`` computes).
- Always-valid intervals: the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Howard
  & Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences" (Annals of
  Statistics, 2024), built on the normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon,
  "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Annals of Statistics,
  2021). At every sample size t the interval is ``estimate +/- sd * w(t)`` with
  ``w(t) = sqrt(2 (t rho^2 + 1) / (t^2 rho^2) * log(sqrt(t rho^2 + 1) / alpha))``; it covers
  the true value at every t simultaneously with probability 1 - alpha, so the report may be read
  every day and stopped at any time. ``rho`` makes it tightest at a planned size t*:
  ``rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / t*``.

The tests hold these to statsmodels (proportion_confint, confint_proportions_2indep,
proportions_ztest, DescrStatsW, CompareMeans, samplesize_proportions_2indep_onetail) to 1e-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

ALPHA = 0.05
_NORMAL = NormalDist()
Z95 = _NORMAL.inv_cdf(1 - ALPHA / 2)


def z_of(alpha: float = ALPHA) -> float:
    """The two-sided critical value of the standard normal for level ``alpha``."""
    return _NORMAL.inv_cdf(1 - alpha / 2)


def two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


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


def proportions_p_value(a: tuple[int, int], b: tuple[int, int]) -> float | None:
    """Two-sided p-value of the pooled z-test that two rates are equal; None when undefined
    (an empty group, or nobody / everybody converted in both)."""
    (sa, na), (sb, nb) = a, b
    if na == 0 or nb == 0:
        return None
    pooled = (sa + sb) / (na + nb)
    variance = pooled * (1 - pooled) * (1 / na + 1 / nb)
    if variance <= 0:
        return None
    return two_sided_p((sb / nb - sa / na) / math.sqrt(variance))


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a sample: size, sum and sum of squares."""

    n: int
    total: float
    squares: float

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The sample variance (n - 1 in the denominator); None below two values."""
        if self.n < 2:
            return None
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def mean_interval(
    sample: Moments, z: float = Z95
) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high), the normal interval of the mean; None where undefined."""
    mean, variance = sample.mean, sample.variance
    if mean is None or variance is None:
        return mean, None, None
    half = z * math.sqrt(variance / sample.n)
    return mean, mean - half, mean + half


def mean_difference(
    a: Moments, b: Moments, z: float = Z95
) -> tuple[float | None, float | None, float | None, float | None]:
    """(mean_b - mean_a, low, high, p-value): the normal interval and two-sided z-test with
    unequal variances; None where undefined (fewer than two values in a group)."""
    if a.mean is None or b.mean is None:
        return None, None, None, None
    delta = b.mean - a.mean
    if a.variance is None or b.variance is None:
        return delta, None, None, None
    se = math.sqrt(a.variance / a.n + b.variance / b.n)
    if se == 0:
        return delta, delta, delta, None
    return delta, delta - z * se, delta + z * se, two_sided_p(delta / se)


def people_per_arm(baseline: float, mde: float, *, power: float = 0.8, alpha: float = ALPHA) -> int:
    """People needed in each of two equal arms to detect ``baseline + mde`` against
    ``baseline`` (rates as fractions) with a two-sided test at level ``alpha``: the
    :func:`sample_size`, rounded up.

    Raises ValueError for rates outside (0, 1), a zero difference or a power outside (0, 1).
    """
    return math.ceil(sample_size(baseline, mde, power=power, alpha=alpha) - 1e-9)


def sample_size(baseline: float, mde: float, *, power: float = 0.8, alpha: float = ALPHA) -> float:
    """The exact (fractional) size behind :func:`people_per_arm`."""
    treated = baseline + mde
    if not (0 < baseline < 1 and 0 < treated < 1):
        raise ValueError("the baseline and baseline + difference must both lie between 0 and 1")
    if mde == 0:
        raise ValueError("the difference to detect must not be zero")
    if not 0 < power < 1:
        raise ValueError("power must lie between 0 and 1")
    pooled = (treated + baseline) / 2
    std_null = math.sqrt(2 * pooled * (1 - pooled))
    std_alt = math.sqrt(treated * (1 - treated) + baseline * (1 - baseline))
    return float(((z_of(alpha) * std_null + _NORMAL.inv_cdf(power) * std_alt) / mde) ** 2)


def sequence_rho(planned: int, alpha: float = ALPHA) -> float:
    """The mixture parameter that makes the confidence sequence tightest at ``planned``."""
    log_term = -2 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1)) / max(planned, 1))


def sequence_width(t: int, rho: float, alpha: float = ALPHA) -> float:
    """``w(t)``: the always-valid half-width per unit of standard deviation at sample size t."""
    if t <= 0:
        return math.inf
    r2 = rho * rho
    return math.sqrt(2 * (t * r2 + 1) / (t * t * r2) * math.log(math.sqrt(t * r2 + 1) / alpha))
