"""Budgets and targets in a journey file: bad ones are located errors, nothing is deployed."""

from __future__ import annotations

import pytest

from engine.dsl.errors import DslError
from engine.dsl.loader import parse_journey_text

pytestmark = pytest.mark.timeout(30)

HEAD = "id: j\nname: J\nentry: {event: x}\n"
STEPS = "steps:\n  - {id: s, send: {channel: sms, template: t, value: 20}}\n"


def test_a_budget_and_a_target_are_read() -> None:
    journey = parse_journey_text(
        HEAD
        + "budget: {max_sends: 50000, max_value: 200000}\n"
        + "target: {conversions: 2000, revenue: 500000, by: 2099-12-12}\n"
        + STEPS,
        "j.yaml",
    )
    assert journey.budget is not None and journey.budget.max_value == 200000
    assert journey.target is not None and journey.target.by.year == 2099


@pytest.mark.parametrize(
    ("line", "column", "words"),
    [
        ("budget: {max_sends: -5}", 21, "expected at least 0, got -5"),
        ("budget: {max_value: lots}", 21, "expected a whole number"),
        ("budget: {max_value: 1.5}", 21, "expected a whole number"),
        ("budget: {}", 9, "a budget needs max_sends, max_value or both"),
        (
            "target: {conversions: 10, by: 2020-01-01}",
            31,
            "the target date 2020-01-01 is in the past",
        ),
    ],
)
def test_a_bad_budget_or_target_is_a_located_error(line: str, column: int, words: str) -> None:
    with pytest.raises(DslError) as raised:
        parse_journey_text(HEAD + line + "\n" + STEPS, "j.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.column) == (4, column), str(problem)
    assert words in problem.message


def test_a_negative_value_on_a_send_step_is_located() -> None:
    with pytest.raises(DslError) as raised:
        parse_journey_text(HEAD + STEPS.replace("value: 20", "value: -1"), "j.yaml")
    [problem] = raised.value.problems
    assert problem.line == 5 and problem.where.endswith("send.value")
