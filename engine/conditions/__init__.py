"""Evaluating the condition language (`engine.dsl.conditions`) over customer data.

    python.evaluate(condition, person, evaluation)    one person, in Python (branches)
    sql.SqlCompiler(dialect, evaluation).where(c)     every profile, in SQL (segments)
    branch.first_match(store, conditions, pid, now)   a branch step: load one person, evaluate
    metrics                                           RFM facts, quintile cuts, money rounding

Both evaluators agree on every profile (a property test on SQLite and PostgreSQL holds them to
it). Errors (one tree)::

    ConditionError(Exception)       a condition cannot be evaluated with the rules given
      UnknownTier                   names a tier that tiers.yaml does not define
      NeedsEventData                `matches` was given a condition that reads events
"""

from __future__ import annotations

from engine.conditions.errors import ConditionError, NeedsEventData, UnknownTier

__all__ = ["ConditionError", "NeedsEventData", "UnknownTier"]
