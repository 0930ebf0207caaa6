"""Shared helpers of the dsl tests: problems of a YAML text, the example files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.dsl.errors import DslError, Problem
from engine.dsl.loader import parse_journey_text

REPO = Path(__file__).resolve().parents[2]
JOURNEYS = REPO / "journeys"
EXAMPLE_JOURNEYS = [JOURNEYS / n for n in ("cart_recovery.yaml", "welcome.yaml", "winback.yaml")]
EXAMPLE_SEGMENTS = [
    JOURNEYS / "segments" / n for n in ("carted_not_paid_yesterday.yaml", "dormant_60_120.yaml")
]
EXAMPLES = EXAMPLE_JOURNEYS + EXAMPLE_SEGMENTS


def journey_problems(text: str) -> list[Problem]:
    """The problems of a journey given as (indented) YAML text; fails if it is valid."""
    with pytest.raises(DslError) as caught:
        parse_journey_text(textwrap.dedent(text), "j.yaml")
    return list(caught.value.problems)


def located(problems: list[Problem]) -> list[tuple[int, int, str]]:
    return [(p.line, p.column, p.where) for p in problems]
