"""The error tree of `engine.conditions` (see the package docstring)."""

from __future__ import annotations


class ConditionError(Exception):
    """A condition cannot be evaluated with the rules given."""


class UnknownTier(ConditionError):
    """A tier condition names a tier that the tier rules (tiers.yaml) do not define."""

    def __init__(self, tier: str, known: list[str]) -> None:
        self.tier = tier
        defined = ", ".join(known) if known else "no tiers"
        super().__init__(f"unknown tier '{tier}': tiers.yaml defines {defined}")


class NeedsEventData(ConditionError):
    """`matches` evaluates attribute and tag conditions only; event-based ones need
    `engine.conditions.python.evaluate` with the person's events (or `first_match`)."""
