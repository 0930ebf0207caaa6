"""Derived purchase metrics shared by both evaluators: windows, money, RFM facts and quintiles.

Definitions (the SQL compilation implements exactly these):

- A window ``within: d`` at evaluation time ``now`` is ``now - d <= occurred_at < now``; no
  window is everything before ``now``.
- Sums of an event property add the numeric values (booleans, text and missing values count as
  0) exactly, as decimals, and are rounded to 6 decimal places (half away from zero), so that
  float summation order on SQLite cannot change a comparison.
- Recency is whole days since the last purchase: ``(now - last) // 1 day``.
- RFM scores are quintiles over every *buyer* (a profile with a purchase before ``now``),
  recomputed at each evaluation: sort the buyers' values ascending, take the values at positions
  ``ceil(k * n / 5) - 1`` for k = 1..4 as cut points, and score = 1 + the number of cut points
  the value is strictly greater than. Ties get the same score; recency is scored on the time of
  the last purchase, so the most recent buyers score 5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from engine.dsl.conditions import NumericComparison

DAY = timedelta(days=1)
MONEY_PLACES = 6
_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)

T = TypeVar("T", int, Decimal, datetime)


def is_number(value: Any) -> bool:
    """JSON numbers: int and float, not bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def decimal(value: int | float | Decimal) -> Decimal:
    """The decimal a JSON number is written as (floats by their shortest repr)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def money(total: int | float | Decimal) -> Decimal:
    """A sum rounded to 6 places, half away from zero (as SQL ROUND does)."""
    return decimal(total).quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def lower_bound(now: datetime, within: timedelta | None) -> datetime | None:
    return None if within is None else now - within


def compare(value: Any, comparison: NumericComparison) -> bool:
    """``value <op> operand`` for a numeric comparison (value an int or Decimal)."""
    op = comparison.operator
    operand = comparison.operand
    if op == "between":
        low, high = (decimal(x) for x in operand)
        return bool(low <= value <= high)
    target = decimal(operand)
    result = {
        "eq": value == target,
        "ne": value != target,
        "gt": value > target,
        "gte": value >= target,
        "lt": value < target,
        "lte": value <= target,
    }[op]
    return bool(result)


def recency_days(now: datetime, last: datetime) -> int:
    return (now - last) // DAY


@dataclass(frozen=True)
class PurchaseFacts:
    """One buyer's facts at evaluation time (absent for a person who never bought)."""

    first: datetime
    last: datetime
    frequency: int
    """Purchases in the RFM window."""
    monetary: Decimal
    """Spend in the RFM window, rounded by `money`."""


@dataclass(frozen=True)
class Cuts:
    """The four quintile cut points of each RFM metric over every buyer."""

    recency: tuple[datetime, ...]
    frequency: tuple[int, ...]
    monetary: tuple[Decimal, ...]
    buyers: int

    def score(self, metric: str, facts: PurchaseFacts) -> int:
        if metric == "recency_score":
            return score(facts.last, self.recency)
        if metric == "frequency_score":
            return score(facts.frequency, self.frequency)
        return score(facts.monetary, self.monetary)


def cut_positions(count: int) -> list[int]:
    """0-based positions of the quintile cut points among ``count`` sorted values."""
    return [math.ceil(k * count / 5) - 1 for k in range(1, 5)]


def quintile_cuts(values: Sequence[T]) -> tuple[T, ...]:
    ordered = sorted(values)
    return tuple(ordered[p] for p in cut_positions(len(ordered)))


def score(value: T, cuts: Sequence[T]) -> int:
    return 1 + sum(1 for cut in cuts if value > cut)


def cuts_of(facts: Iterable[PurchaseFacts]) -> Cuts | None:
    """The cut points over ``facts`` (every buyer's), or None when nobody bought."""
    buyers = list(facts)
    if not buyers:
        return None
    return Cuts(
        recency=quintile_cuts([f.last for f in buyers]),
        frequency=quintile_cuts([f.frequency for f in buyers]),
        monetary=quintile_cuts([f.monetary for f in buyers]),
        buyers=len(buyers),
    )
