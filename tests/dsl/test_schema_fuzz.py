"""Random documents, right and wrong: the schemas and the models give the same verdict.

The hand-written files of test_schema_agreement cover the mistakes a person makes; this covers
the combinations nobody thinks of (two operators and a null, a count beside a sum, a list where
a tier goes ...). The schema is read by the `jsonschema` library (check-jsonschema's engine), the
model exactly as the loader reads a file. Values on the far side of `BEYOND_SCHEMA` (windows
beyond 3660d, whole numbers written 60.0) are not drawn.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.dsl.bounded_yaml import load_yaml
from engine.dsl.models import AUTHORING
from engine.dsl.schema import MODELS, json_schema
from engine.dsl.segments import Segment
from tests.dsl.helpers import JOURNEYS

pytestmark = pytest.mark.timeout(300)

KEYS = (
    *("attribute", "tag", "event", "rfm", "lifecycle", "tier", "all", "any", "not"),
    *("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists", "between"),
    *("within", "count", "sum", "in_", "not_", "bogus"),
)
SCALARS = st.sampled_from(
    [
        *("x", "cart_value", "gold", "Gold", "dormant", "sleepy", "recency", "monetary_score"),
        *("7d", "0d", "1h30m", "", "a b", 3, 0, -2, 1.5, 2**60, True, False, None),
    ]
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["gte", "eq", "lt", "between", "x"]), SCALARS, max_size=2),
)


OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
NUMBERS = st.sampled_from([0, 3, 60, -2, 1.5, 2**53, 2**60])


@st.composite
def _leaf(draw: st.DrawFn) -> dict[str, Any]:
    """A condition that is usually right: one of each kind, with a fitting operand."""
    op = draw(st.sampled_from(OPERATORS))
    number = draw(NUMBERS)
    operand: Any = [number, number + 1] if op == "between" else number
    kind = draw(st.sampled_from(["attribute", "tag", "event", "rfm", "lifecycle", "tier"]))
    if kind == "attribute":
        more = draw(st.sampled_from([{op: operand}, {"in": ["a", 1]}, {"exists": True}]))
        return {"attribute": "x", **more}
    if kind == "tag":
        return {"tag": "vip"}
    if kind == "event":
        within = draw(st.sampled_from([{}, {"within": "7d"}, {"within": "1h30m"}]))
        measure = draw(
            st.sampled_from([{}, {"count": {op: operand}}, {"sum": "amount", op: operand}])
        )
        return {"event": "o", **within, **measure}
    if kind == "rfm":
        return {
            "rfm": draw(st.sampled_from(["recency", "monetary", "frequency_score"])),
            op: operand,
        }
    stages = st.sampled_from(["new", "dormant", "churned"])
    tiers = st.sampled_from(["gold", "silver"])
    one = stages if kind == "lifecycle" else tiers
    return {kind: draw(st.one_of(one, st.lists(one, min_size=1, max_size=2)))}


@st.composite
def _mutated(draw: st.DrawFn, inner: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """``inner``'s condition, with a key added, dropped or changed now and then."""
    condition = dict(draw(inner))
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["add", "drop", "change"]))
        if action == "add" or not condition:
            condition[draw(st.sampled_from(KEYS))] = draw(VALUES)
        elif action == "drop":
            del condition[draw(st.sampled_from(sorted(condition)))]
        else:
            condition[draw(st.sampled_from(sorted(condition)))] = draw(VALUES)
    return condition


def _conditions() -> st.SearchStrategy[Any]:
    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        nested = st.one_of(
            st.builds(lambda c: {"not": c}, inner),
            st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
        )
        return _mutated(nested)

    return st.recursive(_mutated(_leaf()), extend, max_leaves=6)


VALIDATOR = jsonschema.Draft202012Validator(
    json_schema("segment"), format_checker=jsonschema.FormatChecker()
)


def _model_accepts(document: dict[str, Any]) -> bool:
    try:
        Segment.model_validate(document, context=AUTHORING, by_name=False)
    except ValidationError:
        return False
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=_conditions())
def test_the_segment_schema_and_the_model_agree_on_random_conditions(condition: Any) -> None:
    document = {"id": "s", "name": "S", "condition": condition}
    by_schema = VALIDATOR.is_valid(document)
    assert _model_accepts(document) == by_schema, (condition, by_schema)


# --- whole files: the examples, mutated at a random place ----------------------------------------

BEYOND_MESSAGES = (
    "unknown timezone",
    "a cap window is between",
    "calendar windows count whole days",
    "a window is at most 3660d",
    "active_within must not",
    "defined twice",
    "cannot depend on tiers",
    "'else' must be the last",
)
"""The model's messages for the rules of `BEYOND_SCHEMA` (the graph is not checked here)."""

EXTRA_VALUES = st.sampled_from(["10:00", "25:00", "webhook", "after", "defer", "calendar", {}])


def _examples(kind: str) -> list[Any]:
    paths = {
        "journey": [p for p in JOURNEYS.glob("*.yaml") if p.stem not in ("policy", "tiers")],
        "policy": [JOURNEYS / "policy.yaml"],
        "tiers": [JOURNEYS / "tiers.yaml"],
    }[kind]
    return [json.loads(json.dumps(load_yaml(p.read_text(encoding="utf-8")))) for p in paths]


def _keys(schema: dict[str, Any]) -> list[str]:
    nodes = [schema, *schema.get("$defs", {}).values()]
    return sorted({key for node in nodes for key in node.get("properties", {})} | {"bogus"})


def _containers(node: Any) -> list[Any]:
    found = [node] if isinstance(node, dict | list) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    return found + [c for child in children for c in _containers(child)]


@st.composite
def _mutated_file(draw: st.DrawFn, kind: str) -> Any:
    document = copy.deepcopy(draw(st.sampled_from(_examples(kind))))
    keys = st.sampled_from(_keys(json_schema(kind)))
    values = st.one_of(VALUES, EXTRA_VALUES).map(copy.deepcopy)  # never one object twice
    for _ in range(draw(st.integers(1, 3))):
        node = draw(st.sampled_from(_containers(document)))
        action = draw(st.sampled_from(["add", "drop", "change"]))
        if isinstance(node, dict):
            if action == "add" or not node:
                node[draw(keys)] = draw(values)
            elif action == "drop":
                del node[draw(st.sampled_from(sorted(node)))]
            else:
                node[draw(st.sampled_from(sorted(node)))] = draw(values)
        elif action == "add" or not node:
            node.append(draw(values))
        elif action == "drop":
            del node[draw(st.integers(0, len(node) - 1))]
        else:
            node[draw(st.integers(0, len(node) - 1))] = draw(values)
    return document


def _errors(kind: str, document: Any) -> list[str]:
    try:
        MODELS[kind].model_validate(document, context=AUTHORING, by_name=False)
    except ValidationError as exc:
        return [str(error["msg"]) for error in exc.errors()]
    return []


@pytest.mark.parametrize("kind", ["journey", "policy", "tiers"])
def test_the_schema_and_the_model_agree_on_mutated_example_files(kind: str) -> None:
    validator = jsonschema.Draft202012Validator(json_schema(kind))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(document=_mutated_file(kind))
    def check(document: Any) -> None:
        errors = _errors(kind, document)
        by_schema = validator.is_valid(document)
        beyond = bool(errors) and all(any(m in e for m in BEYOND_MESSAGES) for e in errors)
        assert (not errors) == by_schema or (beyond and by_schema), (errors, by_schema)

    check()
