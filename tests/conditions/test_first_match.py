"""A branch evaluates its conditions for one person from the store, first match wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from engine.conditions.branch import first_match
from engine.conditions.errors import NeedsEventData, UnknownTier
from engine.conditions.python import matches
from engine.domain import Event, Profile
from engine.dsl.conditions import Condition
from engine.dsl.loader import load_tiers
from engine.store import Store
from tests.conditions.conftest import clean

NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
CONDITION = TypeAdapter[Condition](Condition)


def conditions(*raw: object) -> list[Condition]:
    return [CONDITION.validate_python(r) for r in raw]


async def test_first_match_reads_events_tiers_and_lifecycle(db: Store) -> None:
    await clean(db)
    rules = load_tiers(Path(__file__).parents[2] / "journeys" / "tiers.yaml")
    await db.upsert_profiles(
        [Profile("carted", {"cart_value": 80}), Profile("vip", {"stored_value": 5000})]
    )
    await db.record_events(
        [
            Event("c1", "carted", "cart_added", NOW - timedelta(hours=20)),
            Event("o1", "carted", "order_paid", NOW - timedelta(days=90), {"amount": 150}),
            Event("o2", "vip", "order_paid", NOW + timedelta(hours=1), {"amount": 1}),  # later
        ]
    )
    branch = conditions(
        {"tier": "diamond"},
        {
            "all": [
                {"event": "cart_added", "within": "1d"},
                {"event": "order_paid", "within": "1d", "count": {"eq": 0}},
            ]
        },
        {"lifecycle": "prospect"},
    )
    assert await first_match(db, branch, "vip", NOW, rules=rules) == 0
    assert await first_match(db, branch, "carted", NOW, rules=rules) == 1
    assert await first_match(db, branch[2:], "vip", NOW, rules=rules) == 0  # o2 is after now
    assert await first_match(db, branch[2:], "carted", NOW, rules=rules) is None
    assert await first_match(db, branch, "nobody", NOW, rules=rules) is None
    dormant = conditions({"lifecycle": "dormant"}, {"rfm": "recency", "eq": 90})
    assert await first_match(db, dormant, "carted", NOW, rules=rules) == 0
    assert await first_match(db, dormant[1:], "carted", NOW, rules=rules) == 0
    # The only buyer: every cut point is their own spend, and no value exceeds itself.
    score = conditions({"rfm": "monetary_score", "eq": 1})
    assert await first_match(db, score, "carted", NOW, rules=rules) == 0
    assert await first_match(db, score, "vip", NOW, rules=rules) is None  # never bought


async def test_undefined_tier_and_attribute_only_matches(db: Store) -> None:
    await clean(db)
    await db.upsert_profiles([Profile("p", {"cart_value": 250})])
    with pytest.raises(UnknownTier, match="unknown tier 'gold'"):
        await first_match(db, conditions({"tier": "gold"}), "p", NOW)
    profile = Profile("p", {"cart_value": 250}, frozenset({"vip"}))
    assert matches(CONDITION.validate_python({"attribute": "cart_value", "gte": 200}), profile)
    assert matches(CONDITION.validate_python({"tag": "vip"}), profile)
    with pytest.raises(NeedsEventData):
        matches(CONDITION.validate_python({"event": "order_paid"}), profile)
