"""Whatever a file holds, loading it gives a journey or located problems, never a crash."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.dsl.errors import DslError
from engine.dsl.loader import parse_journey_text

WORDS = [
    "id", "name", "entry", "steps", "event", "segment", "schedule", "api", "goal", "within",
    "reentry", "policy", "cooldown", "caps", "max", "per", "wait", "until", "next", "wait_for",
    "timeout", "on_event", "on_timeout", "branch", "when", "goto", "else", "split", "variant",
    "weight", "send", "channel", "template", "on_suppressed", "on_failure", "update", "exit",
    "attribute", "gte", "between", "in", "tag", "all", "any", "not", "wiat", "a", "b",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.sampled_from(
        ["1h", "2d", "1x", "10:00", "25:00", "a", "b", "A", "sms", "0 10 * * *", "after", ""]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(WORDS), inner, max_size=4)
    ),
    max_leaves=12,
)
STEP = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c", "Bad Id"])},
    optional={k: VALUES for k in ("wait", "send", "branch", "split", "wait_for", "exit", "next")},
)
JOURNEY = st.fixed_dictionaries(
    {"steps": st.lists(STEP, max_size=4)},
    optional={k: VALUES for k in ("id", "name", "entry", "goal", "reentry", "caps", "exit_on")},
)


def _yaml(data: Any) -> str:
    out = io.StringIO()
    YAML().dump(data, out)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(JOURNEY)
def test_any_document_gives_a_journey_or_located_problems(data: dict[str, Any]) -> None:
    text = _yaml(data)
    try:
        parse_journey_text(text, "f.yaml")
    except DslError as exc:
        assert exc.problems
        lines = text.count("\n") + 1
        for problem in exc.problems:
            assert 1 <= problem.line <= lines, problem
            assert problem.column >= 1, problem
            assert "Input should" not in problem.message, problem
            assert "function-" not in problem.message, problem
