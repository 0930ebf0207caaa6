"""The quick path of the JSON-object check agrees with the precise one on every input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api.models import MAX_JSON_BYTES, _check_json, _json_object

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.text(alphabet='ab\x00\x7f"\\\ud800', max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


def reference(value: dict[str, Any]) -> bool:
    """The precise rule: a walk, then the serialised size."""
    try:
        _check_json(value, "$", 0)
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return False
    return len(text.encode("utf-8")) <= MAX_JSON_BYTES


def accepted(value: dict[str, Any]) -> bool:
    try:
        _json_object(value)
    except ValueError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_the_quick_check_agrees_with_the_precise_one(value: dict[str, Any]) -> None:
    assert accepted(value) == reference(value)


def test_a_flat_object_near_the_size_limit_is_measured_exactly() -> None:
    under = {"k": "x" * (MAX_JSON_BYTES - 8)}
    over = {"k": "x" * (MAX_JSON_BYTES - 7)}
    assert len(json.dumps(under, separators=(",", ":"))) == MAX_JSON_BYTES
    assert accepted(under) and not accepted(over)
