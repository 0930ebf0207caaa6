"""What an evaluation needs beyond the person: the time, the rules, population statistics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.conditions.errors import UnknownTier
from engine.conditions.metrics import Cuts
from engine.dsl.conditions import (
    Condition,
    EventCondition,
    LifecycleCondition,
    RfmCondition,
    TierCondition,
    walk,
)
from engine.dsl.tiers import Tier, Tiers
from engine.store.columns import require_aware


@dataclass(frozen=True)
class Evaluation:
    """``now``: the evaluation time (aware); ``rules``: tiers.yaml; ``cuts``: the RFM quintile
    cut points over every buyer at ``now`` (needed only by ``*_score`` conditions; None when
    nobody has bought, which makes every score comparison false)."""

    now: datetime
    rules: Tiers = field(default_factory=Tiers)
    cuts: Cuts | None = None

    def __post_init__(self) -> None:
        require_aware(self.now)

    def tiers_for(self, condition: TierCondition) -> list[tuple[Tier, list[Tier]]]:
        """For each tier named: (the tier, the tiers above it). Raises UnknownTier."""
        known = self.rules.tiers
        ids = [t.id for t in known]
        for wanted in condition.tier:
            if wanted not in ids:
                raise UnknownTier(wanted, ids)
        return [(t, known[:i]) for i, t in enumerate(known) if t.id in condition.tier]


def expanded(condition: Condition, rules: Tiers) -> Iterator[Condition]:
    """Every condition inside ``condition``, with the conditions of the tiers it names."""
    for inner in walk(condition):
        yield inner
        if isinstance(inner, TierCondition):
            ids = [t.id for t in rules.tiers]
            for wanted in inner.tier:
                if wanted not in ids:
                    raise UnknownTier(wanted, ids)
            for tier in rules.tiers[: max(ids.index(w) for w in inner.tier) + 1]:
                yield from walk(tier.when)


def needs_cuts(condition: Condition, rules: Tiers) -> bool:
    """Whether evaluating ``condition`` needs the population's RFM cut points."""
    return any(
        isinstance(c, RfmCondition) and c.rfm.endswith("_score") for c in expanded(condition, rules)
    )


def event_needs(condition: Condition, rules: Tiers) -> dict[str, timedelta | None]:
    """Event name -> how far back its events are read (None: all history before now)."""
    needs: dict[str, timedelta | None] = {}

    def want(name: str, within: timedelta | None) -> None:
        if name in needs:
            current = needs[name]
            needs[name] = None if current is None or within is None else max(current, within)
        else:
            needs[name] = within

    for c in expanded(condition, rules):
        if isinstance(c, EventCondition):
            want(c.event, c.within)
        elif isinstance(c, RfmCondition | LifecycleCondition):
            want(rules.purchase.event, None)
    return needs
