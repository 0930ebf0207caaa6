"""The JSON Schemas are plain JSON that editors can use, covering every step kind."""

from __future__ import annotations

import json
from typing import Any

from engine.dsl.models import STEP_KINDS
from engine.dsl.schema import journey_json_schema, segment_json_schema


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_journey_schema_is_json_and_names_every_step_kind() -> None:
    schema = journey_json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert schema["$id"] == "urn:journey-engine:schema:journey"
    assert schema["title"] == "Journey"
    properties = {
        key for definition in schema["$defs"].values() for key in definition.get("properties", {})
    }
    assert set(STEP_KINDS) <= properties
    assert {"else", "in", "not"} <= properties  # keys as written in YAML, not Python names


def test_every_reference_resolves() -> None:
    for schema in (journey_json_schema(), segment_json_schema()):
        for ref in _refs(schema):
            assert ref.startswith("#/$defs/")
            assert ref.removeprefix("#/$defs/") in schema["$defs"]


def test_segment_schema() -> None:
    schema = segment_json_schema()
    assert schema["title"] == "Segment"
    assert set(schema["required"]) == {"id", "name", "condition"}


def test_durations_are_strings_with_a_pattern() -> None:
    schema = journey_json_schema()
    goal = schema["$defs"]["Goal"]["properties"]["within"]
    assert goal["type"] == "string" and "pattern" in goal
