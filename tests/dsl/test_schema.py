"""The JSON Schemas are plain JSON that editors can use: every kind, every step kind, documented,
committed and named by the example files. (Their agreement with validate: test_schema_agreement.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from engine.cli.authoring import SchemaKind
from engine.cli.main import app
from engine.dsl.models import STEP_KINDS
from engine.dsl.schema import KINDS, any_json_schema, journey_json_schema, segment_json_schema
from tests.dsl.helpers import JOURNEYS, REPO


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
    for schema in map(any_json_schema, KINDS):
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


SCHEMAS = REPO / "schemas"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)\n")


def test_committed_schemas_are_what_schema_write_generates(tmp_path: Path) -> None:
    # The `$schema` lines of the examples point at the committed files: they must not drift.
    result = CliRunner().invoke(app, ["schema", "--write", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in SCHEMAS.glob("*.json"))
    assert written == sorted(f"{kind}.schema.json" for kind in KINDS)
    for name in written:
        assert (SCHEMAS / name).read_text(encoding="utf-8") == (tmp_path / name).read_text(
            encoding="utf-8"
        ), f"schemas/{name} is stale: run `journey schema --write schemas`"


def test_schema_write_prints_the_vscode_mapping(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--write", str(tmp_path / "out")])
    mapping = json.loads(result.output)["yaml.schemas"]
    assert mapping[f"{tmp_path}/out/segment.schema.json"] == ["journeys/segments/*.yaml"]
    assert mapping[f"{tmp_path}/out/policy.schema.json"] == ["journeys/policy.yaml"]
    assert "!journeys/policy.yaml" in mapping[f"{tmp_path}/out/journey.schema.json"]
    assert all(Path(path).is_file() for path in mapping)


def test_schema_prints_every_kind() -> None:
    assert [kind.value for kind in SchemaKind] == list(KINDS)
    for kind in KINDS:
        result = CliRunner().invoke(app, ["schema", "--kind", kind])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["$id"] == f"urn:journey-engine:schema:{kind}"


def _undescribed(schema: dict[str, Any]) -> list[str]:
    definitions = schema.get("$defs", {})
    missing = [f"$defs/{name}" for name, d in definitions.items() if "description" not in d]
    for name, node in [("top", schema), *definitions.items()]:
        missing += [
            f"{name}.{key}"
            for key, value in node.get("properties", {}).items()
            if "description" not in value
        ]
    return missing


def test_every_property_and_definition_has_a_description() -> None:
    # The hover text in an editor; attribute docstrings of the models (use_attribute_docstrings).
    missing = [
        f"{kind}: {where}" for kind in KINDS for where in _undescribed(any_json_schema(kind))
    ]
    assert missing == []


def test_allowed_values_are_enums() -> None:
    defs = journey_json_schema()["$defs"]
    assert defs["Reentry"]["properties"]["policy"]["enum"] == ["once", "after", "always"]
    assert defs["RfmCondition"]["properties"]["rfm"]["enum"][0] == "recency"
    lifecycle = defs["LifecycleCondition"]["properties"]["lifecycle"]["anyOf"]
    assert lifecycle[0]["enum"] == ["prospect", "new", "active", "dormant", "churned"]
    policy = any_json_schema("policy")["$defs"]
    assert policy["OnCapped"]["properties"]["action"]["enum"] == ["defer", "skip", "exit"]


def test_every_example_file_names_its_schema_by_a_path_that_exists() -> None:
    kinds = {
        **{p: "journey" for p in JOURNEYS.glob("*.yaml")},
        JOURNEYS / "policy.yaml": "policy",
        JOURNEYS / "tiers.yaml": "tiers",
        **{p: "segment" for p in (JOURNEYS / "segments").glob("*.yaml")},
        **{p: "template" for p in (JOURNEYS / "templates").glob("*.yaml")},
    }
    assert len(kinds) > 30
    for path, kind in kinds.items():
        match = MODELINE.match(path.read_text(encoding="utf-8"))
        assert match, f"{path}: the first line is not a yaml-language-server $schema comment"
        target = (path.parent / match.group(1)).resolve()
        assert target == (SCHEMAS / f"{kind}.schema.json").resolve(), path
