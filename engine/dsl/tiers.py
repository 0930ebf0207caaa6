"""Member tiers and the purchase facts they rest on (``journeys/tiers.yaml``).

    purchase: {event: order_paid, amount: amount}    # what a purchase is, and its value
    rfm: {window: 365d}                              # frequency / monetary window (none: all)
    lifecycle: {new_within: 30d, active_within: 60d, dormant_within: 120d}
    tiers:                                           # highest first; the first that matches wins
      - {id: diamond, name: 钻石, when: {event: order_paid, within: 365d, sum: amount, gte: 1000}}
      - ...

Lifecycle stages, at an evaluation time ``now`` (only purchases before ``now`` count):

    prospect   registered (a profile) but never bought
    new        first purchase within ``new_within``
    active     not new; last purchase within ``active_within``
    dormant    not new; last purchase within ``dormant_within`` but not ``active_within``
    churned    not new; last purchase longer ago than ``dormant_within``

"within d" means ``now - d <= occurred_at``. Every person is in exactly one stage.

Tiers are conditions of the condition language (spend and order counts as ``event`` conditions,
stored value as an attribute). A person's tier is the first tier, from the top, whose ``when``
matches; a person matching none has no tier. A tier's ``when`` may not name tiers itself.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from engine.dsl.base import AttributeName, Slug, Strict
from engine.dsl.conditions import Condition, TierCondition, walk
from engine.dsl.durations import Duration


class Purchase(Strict):
    """The event that is a purchase, and the property holding its value."""

    event: AttributeName = "order_paid"
    """The event that is a purchase."""
    amount: AttributeName = "amount"
    """The event property holding the purchase's value."""


class Rfm(Strict):
    """Frequency and monetary count purchases in ``window`` before now (absent: all history)."""

    window: Duration | None = None
    """e.g. 365d; absent: all history."""


class Lifecycle(Strict):
    """The thresholds of the lifecycle stages (prospect, new, active, dormant, churned)."""

    new_within: Duration = timedelta(days=30)
    """new: the first purchase at most this long ago."""
    active_within: Duration = timedelta(days=60)
    """active: the last purchase at most this long ago."""
    dormant_within: Duration = timedelta(days=120)
    """dormant: the last purchase at most this long ago (longer: churned)."""

    @model_validator(mode="after")
    def _ordered(self) -> Lifecycle:
        if not self.active_within <= self.dormant_within:
            raise ValueError("active_within must not be longer than dormant_within")
        return self


class Tier(Strict):
    """One member tier: the people its condition matches (unless a tier above matched)."""

    id: Slug
    """The tier's id, named in conditions as {tier: ID}, e.g. gold."""
    name: str = Field("", max_length=200)
    """A readable name, e.g. 金卡 (gold)."""
    when: Condition
    """Who is in the tier, e.g. {event: order_paid, within: 365d, sum: amount, gte: 300}; it may
    not name tiers."""

    @field_validator("when")
    @classmethod
    def _no_tiers_inside(cls, value: Condition) -> Condition:
        if any(isinstance(c, TierCondition) for c in walk(value)):
            raise ValueError("a tier's condition cannot depend on tiers")
        return value


class Tiers(Strict):
    """The whole file; every section has defaults, so an empty file is valid (and has no tiers)."""

    purchase: Purchase = Field(default_factory=Purchase)
    """What a purchase is: {event: order_paid, amount: amount}."""
    rfm: Rfm = Field(default_factory=Rfm)
    """The window of frequency and monetary: {window: 365d}."""
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    """{new_within: 30d, active_within: 60d, dormant_within: 120d}."""
    tiers: list[Tier] = Field(default_factory=list)
    """Highest first: a person's tier is the first whose when matches; ids are unique."""

    @field_validator("tiers")
    @classmethod
    def _unique(cls, value: list[Tier]) -> list[Tier]:
        seen: set[str] = set()
        for tier in value:
            if tier.id in seen:
                raise ValueError(f"tier '{tier.id}' is defined twice")
            seen.add(tier.id)
        return value

    def tier_ids(self) -> list[str]:
        return [t.id for t in self.tiers]
