"""The goal names the property holding an order's revenue; the policy sets the experiments'
minimum sample. Both are validated and located like every other key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.dsl.errors import DslError
from engine.dsl.loader import load_policy, parse_journey_text
from engine.dsl.schema import journey_json_schema
from tests.dsl.helpers import REPO, journey_problems, located

JOURNEY = """\
id: j
name: j
entry: {api: true}
goal: {event: order_paid, within: 7d, value: %s}
steps:
  - {id: done, exit: {}}
"""


def test_the_goal_value_is_read_and_in_the_schema() -> None:
    journey = parse_journey_text(JOURNEY % "amount", "j.yaml")
    assert journey.goal is not None and journey.goal.value == "amount"
    goal = journey_json_schema()["$defs"]["Goal"]
    assert "value" in goal["properties"] and "value" not in goal.get("required", [])


def test_a_bad_goal_value_is_located() -> None:
    [problem] = journey_problems(JOURNEY % '"not a name!"')
    assert located([problem])[0][:2] == (4, 46) and "goal.value" in problem.where


def test_the_example_journeys_carry_revenue_and_the_policy_a_minimum_sample() -> None:
    assert load_policy(REPO / "journeys" / "policy.yaml").experiments.min_sample == 100
    for name in ("cart_recovery.yaml", "welcome.yaml", "winback.yaml"):
        text = (REPO / "journeys" / name).read_text()
        journey = parse_journey_text(text, name)
        assert journey.goal is not None and journey.goal.value == "amount"


def test_a_minimum_sample_below_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("experiments: {min_sample: 0}\n")
    with pytest.raises(DslError) as caught:
        load_policy(path)
    assert "experiments.min_sample" in str(caught.value)
