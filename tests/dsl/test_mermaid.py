"""The Mermaid drawing shows every step and every labelled way out of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.dsl.loader import load_journey, parse_journey_text
from engine.dsl.mermaid import to_mermaid
from tests.dsl.helpers import EXAMPLE_JOURNEYS


@pytest.mark.parametrize("path", EXAMPLE_JOURNEYS, ids=lambda p: p.name)
def test_every_step_is_a_node(path: Path) -> None:
    journey = load_journey(path)
    text = to_mermaid(journey)
    assert text.startswith("flowchart TD\n")
    for index, step in enumerate(journey.steps):
        assert f"s{index}" in text
        assert f'"{step.id}<br/>' in text


def test_cart_recovery_drawing() -> None:
    text = to_mermaid(load_journey(EXAMPLE_JOURNEYS[0]))
    for line in (
        's0["pause<br/>wait 1h"]',
        's1{"value<br/>branch"}',
        's4["copy_b<br/>send sms: cart_b"]',
        's8(["done<br/>exit"])',
        's1 -->|"when cart_value gte 200"| s5',
        's1 -->|"else"| s2',
        's2 -->|"variant A 45%"| s3',
        's2 -->|"variant holdout 10%"| s8',
        's6 -->|"on_event order_paid"| s8',
        's6 -->|"timeout 2d"| s7',
        's7 -->|"suppressed"| s8',
        "s0 --> s1",
    ):
        assert f"    {line}\n" in text
    assert "run_end" not in text  # every path ends in an exit step


def test_implicit_end_and_quotes() -> None:
    journey = parse_journey_text(
        "id: j\nname: J\nentry: {api: true}\nsteps:\n"
        '  - id: end\n    wait: {until: "09:30"}\n'
        '  - id: b\n    branch:\n      - {when: {attribute: city, eq: "say \\"hi\\""}, goto: end}\n'
    )
    text = to_mermaid(journey)
    assert 's0["end<br/>wait until 09:30"]' in text  # `end` is a Mermaid keyword: not a node id
    assert 's1 -->|"when city eq say #quot;hi#quot;"| s0' in text
    assert 's1 -->|"else"| run_end' in text
    assert "run_end((end))" in text
