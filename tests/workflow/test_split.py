"""The split is sticky and honours its weights (pure: the same functions the workflow calls)."""

from __future__ import annotations

from collections import Counter

from engine.dsl.models import SplitStep
from engine.workflow.journey import pick_variant, split_bucket

STEP = SplitStep.model_validate(
    {
        "id": "test",
        "split": [
            {"variant": "A", "weight": 45, "goto": "a"},
            {"variant": "B", "weight": 45, "goto": "b"},
            {"variant": "holdout", "weight": 10, "goto": "done"},
        ],
    }
)


def variant_of(profile_id: str, journey: str = "cart-recovery") -> str:
    return pick_variant(STEP, split_bucket(journey, STEP.id, profile_id))[0]


def test_ten_thousand_people_land_within_two_points_of_the_weights() -> None:
    counts = Counter(variant_of(f"p{i:05d}") for i in range(10_000))
    shares = {v: counts[v] / 100 for v in ("A", "B", "holdout")}
    assert abs(shares["A"] - 45) <= 2
    assert abs(shares["B"] - 45) <= 2
    assert abs(shares["holdout"] - 10) <= 2


def test_the_same_person_always_gets_the_same_variant() -> None:
    first = [variant_of(f"p{i}") for i in range(500)]
    again = [variant_of(f"p{i}") for i in range(500)]
    assert first == again


def test_assignment_is_independent_between_journeys() -> None:
    # Otherwise the same people would be the holdout of every experiment.
    same = sum(variant_of(f"p{i}", "j1") == variant_of(f"p{i}", "j2") for i in range(5_000))
    expected = 5_000 * (0.45**2 + 0.45**2 + 0.1**2)
    assert abs(same - expected) < 5_000 * 0.03


def test_zero_weight_variant_gets_nobody() -> None:
    step = SplitStep.model_validate(
        {
            "id": "s",
            "split": [
                {"variant": "A", "weight": 100, "goto": "a"},
                {"variant": "B", "weight": 0, "goto": "b"},
            ],
        }
    )
    assert {pick_variant(step, b)[0] for b in range(10_000)} == {"A"}
