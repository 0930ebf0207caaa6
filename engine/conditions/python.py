"""Evaluate a condition for one profile, in Python (branches; segment preview on small sets).

Semantics follow SQL so that the SQL compilation agrees: a comparison with a missing attribute, or
with a value of another type, is false — including ``ne`` and ``not_in``; ``exists`` tests presence.
"""

from __future__ import annotations

from typing import Any

from engine.domain import Profile
from engine.dsl.conditions import (
    AllCondition,
    AnyCondition,
    AttributeCondition,
    Condition,
    NotCondition,
    TagCondition,
)


def matches(condition: Condition, profile: Profile) -> bool:
    """True when ``profile`` satisfies ``condition``."""
    if isinstance(condition, AttributeCondition):
        return _attribute(condition, profile.attributes)
    if isinstance(condition, TagCondition):
        return condition.tag in profile.tags
    if isinstance(condition, AllCondition):
        return all(matches(c, profile) for c in condition.all)
    if isinstance(condition, AnyCondition):
        return any(matches(c, profile) for c in condition.any)
    if isinstance(condition, NotCondition):
        return not matches(condition.not_, profile)
    raise TypeError(f"unknown condition {type(condition).__name__}")


def _comparable(a: Any, b: Any) -> bool:
    """Numbers compare with numbers (bool is not a number here), strings with strings."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    numeric = (int, float)
    return (isinstance(a, numeric) and isinstance(b, numeric)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def _attribute(condition: AttributeCondition, attributes: dict[str, Any]) -> bool:
    op = condition.operator
    operand = condition.operand(op)
    present = condition.attribute in attributes and attributes[condition.attribute] is not None
    if op == "exists":
        return present is bool(operand)
    if not present:
        return False
    value = attributes[condition.attribute]
    if op == "in":
        return any(_comparable(value, o) and value == o for o in operand)
    if op == "not_in":
        return all(_comparable(value, o) and value != o for o in operand)
    if op == "contains":
        if isinstance(value, list):
            return operand in value
        return isinstance(value, str) and isinstance(operand, str) and operand in value
    if op == "between":
        low, high = operand
        return _comparable(value, low) and _comparable(value, high) and low <= value <= high
    if not _comparable(value, operand):
        return False
    if op == "eq":
        return bool(value == operand)
    if op == "ne":
        return bool(value != operand)
    if op == "gt":
        return bool(value > operand)
    if op == "gte":
        return bool(value >= operand)
    if op == "lt":
        return bool(value < operand)
    if op == "lte":
        return bool(value <= operand)
    raise ValueError(f"unknown operator {op}")
