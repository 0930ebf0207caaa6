"""Evaluate a condition for one person, in Python (branches; the reference for the SQL).

Semantics follow SQL so that the SQL compilation agrees: a comparison with a missing attribute, or
with a value of another type, is false — including ``ne`` and ``not_in``; ``exists`` tests
presence (a JSON null is absent). Numbers compare with numbers (booleans are not numbers), text
with text (by code point), booleans with booleans; ``contains`` finds a value of the same type in
a list attribute, or a substring in a text attribute. Event-based conditions follow
`engine.conditions.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.conditions.context import Evaluation, event_needs
from engine.conditions.errors import NeedsEventData
from engine.conditions.metrics import (
    PurchaseFacts,
    compare,
    decimal,
    is_number,
    lower_bound,
    money,
    recency_days,
)
from engine.domain import Profile
from engine.dsl.conditions import (
    AllCondition,
    AnyCondition,
    AttributeCondition,
    Condition,
    EventCondition,
    LifecycleCondition,
    NotCondition,
    RfmCondition,
    TagCondition,
    TierCondition,
    walk,
)
from engine.dsl.tiers import Tiers


@dataclass(frozen=True)
class PersonEvent:
    name: str
    occurred_at: datetime
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class Person:
    """A profile with (at least) the events its conditions read; events at or after the
    evaluation time are ignored, so passing more is harmless."""

    profile: Profile
    events: Sequence[PersonEvent] = ()


def matches(condition: Condition, profile: Profile) -> bool:
    """True when ``profile`` satisfies an attribute / tag condition.

    Raises NeedsEventData for conditions that read events, RFM, lifecycle or tiers: those need
    an evaluation time and the person's events (`evaluate`, or `engine.conditions.branch`).
    """
    if event_needs(condition, Tiers()) or _names_tiers(condition):
        raise NeedsEventData(
            "this condition reads events (event, rfm, lifecycle or tier): "
            "use engine.conditions.branch.first_match"
        )
    return evaluate(condition, Person(profile), Evaluation(now=datetime.min.replace(tzinfo=UTC)))


def evaluate(condition: Condition, person: Person, evaluation: Evaluation) -> bool:
    """True when ``person`` satisfies ``condition`` at ``evaluation.now``.

    Raises UnknownTier for a tier the rules do not define.
    """
    return _Evaluator(person, evaluation).check(condition)


def purchase_facts(person: Person, evaluation: Evaluation) -> PurchaseFacts | None:
    """The person's purchase facts at ``evaluation.now``; None if they never bought."""
    rules = evaluation.rules
    now = evaluation.now
    purchases = [e for e in person.events if e.name == rules.purchase.event and e.occurred_at < now]
    if not purchases:
        return None
    low = lower_bound(now, rules.rfm.window)
    in_window = [e for e in purchases if low is None or e.occurred_at >= low]
    return PurchaseFacts(
        first=min(e.occurred_at for e in purchases),
        last=max(e.occurred_at for e in purchases),
        frequency=len(in_window),
        monetary=_sum(in_window, rules.purchase.amount),
    )


def _sum(events: Sequence[PersonEvent], prop: str) -> Decimal:
    total = sum(
        (decimal(e.properties[prop]) for e in events if is_number(e.properties.get(prop))),
        Decimal(0),
    )
    return money(total)


def _names_tiers(condition: Condition) -> bool:
    return any(isinstance(c, TierCondition) for c in walk(condition))


class _Evaluator:
    def __init__(self, person: Person, evaluation: Evaluation) -> None:
        self.person = person
        self.evaluation = evaluation
        self._facts: tuple[PurchaseFacts | None] | None = None

    @property
    def facts(self) -> PurchaseFacts | None:
        if self._facts is None:
            self._facts = (purchase_facts(self.person, self.evaluation),)
        return self._facts[0]

    def check(self, condition: Condition) -> bool:
        if isinstance(condition, AttributeCondition):
            return _attribute(condition, self.person.profile.attributes)
        if isinstance(condition, TagCondition):
            return condition.tag in self.person.profile.tags
        if isinstance(condition, EventCondition):
            return self._event(condition)
        if isinstance(condition, RfmCondition):
            return self._rfm(condition)
        if isinstance(condition, LifecycleCondition):
            return self._stage() in condition.lifecycle
        if isinstance(condition, TierCondition):
            return any(
                self.check(tier.when) and not any(self.check(t.when) for t in above)
                for tier, above in self.evaluation.tiers_for(condition)
            )
        if isinstance(condition, AllCondition):
            return all(self.check(c) for c in condition.all)
        if isinstance(condition, AnyCondition):
            return any(self.check(c) for c in condition.any)
        if isinstance(condition, NotCondition):
            return not self.check(condition.not_)
        raise TypeError(f"unknown condition {type(condition).__name__}")

    def _event(self, condition: EventCondition) -> bool:
        now = self.evaluation.now
        low = lower_bound(now, condition.within)
        events = [
            e
            for e in self.person.events
            if e.name == condition.event
            and e.occurred_at < now
            and (low is None or e.occurred_at >= low)
        ]
        if condition.sum is not None:
            return compare(_sum(events, condition.sum), condition)
        return compare(len(events), condition.measure)

    def _rfm(self, condition: RfmCondition) -> bool:
        facts = self.facts
        if facts is None:
            return False
        metric = condition.rfm
        if metric == "recency":
            return compare(recency_days(self.evaluation.now, facts.last), condition)
        if metric == "frequency":
            return compare(facts.frequency, condition)
        if metric == "monetary":
            return compare(facts.monetary, condition)
        cuts = self.evaluation.cuts
        if cuts is None:
            return False
        return compare(cuts.score(metric, facts), condition)

    def _stage(self) -> str:
        facts = self.facts
        if facts is None:
            return "prospect"
        now = self.evaluation.now
        lifecycle = self.evaluation.rules.lifecycle
        if facts.first >= now - lifecycle.new_within:
            return "new"
        if facts.last >= now - lifecycle.active_within:
            return "active"
        if facts.last >= now - lifecycle.dormant_within:
            return "dormant"
        return "churned"


def kind_of(value: Any) -> str | None:
    """The comparison class of a JSON value: ``bool``, ``num``, ``str`` or None (others)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return None


def _comparable(a: Any, b: Any) -> bool:
    kind = kind_of(a)
    return kind is not None and kind == kind_of(b)


def _attribute(condition: AttributeCondition, attributes: Mapping[str, Any]) -> bool:
    op = condition.operator
    operand = condition.operand(op)
    present = attributes.get(condition.attribute) is not None
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
            return any(_comparable(item, operand) and item == operand for item in value)
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
