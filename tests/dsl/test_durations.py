"""Durations: what a marketer writes parses, and every duration prints back to itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.dsl.durations import format_duration, parse_duration


@given(st.integers(min_value=1, max_value=10 * 365 * 86400))
def test_format_then_parse_is_identity(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.lists(st.tuples(st.integers(0, 500), st.sampled_from("smhdw")), min_size=1, max_size=4))
def test_any_written_duration_round_trips(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    if sum(n for n, _ in parts) == 0:
        with pytest.raises(ValueError, match="longer than zero"):
            parse_duration(text)
        return
    value = parse_duration(text)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("1h30m", timedelta(minutes=90)), ("1w", timedelta(7))],
)
def test_examples(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1x", "", "h", "1.5h", "-1h", 5])
def test_nonsense_is_refused_with_the_expected_form(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 30m"):
        parse_duration(text)
