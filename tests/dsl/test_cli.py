"""`journey validate / graph / schema`: one line per problem, exit 1, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from engine.cli.authoring import register
from tests.dsl.helpers import EXAMPLE_JOURNEYS, EXAMPLES

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_validate_examples_is_ok() -> None:
    result = runner.invoke(_app(), ["validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output == "ok: 3 journeys, 2 segments\n"


def test_validate_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: j\nname: J\nentry: {event: x}\nsteps:\n"
        "  - id: a\n    wait: 1x\n  - id: b\n    send: {channel: sms, template: t, next: zz}\n",
        encoding="utf-8",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [\n", encoding="utf-8")
    result = runner.invoke(_app(), ["validate", str(bad), str(broken), str(tmp_path / "no.yaml")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    assert lines == [
        f"{bad}:6:11: steps[0](id=a).wait: expected a duration such as 30m, 1h, 2d or 1w "
        "(units s m h d w), got '1x'",
        f"{bad}:8:45: steps[1](id=b).send.next: unknown step 'zz' (steps are: a, b)",
        f"{broken}:2:1: top level: YAML syntax error: expected the node content, but found "
        "'<stream end>' (while parsing a flow node started at line 2)",
        f"{tmp_path / 'no.yaml'}:0:0: top level: no such file",
    ]


def test_graph_prints_mermaid() -> None:
    result = runner.invoke(_app(), ["graph", str(EXAMPLE_JOURNEYS[0])])
    assert result.exit_code == 0
    assert result.output.startswith("flowchart TD\n")


def test_graph_of_a_bad_journey_prints_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: j\n", encoding="utf-8")
    result = runner.invoke(_app(), ["graph", str(bad)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.splitlines() == [
        f"{bad}:1:1: top level: missing key '{key}'" for key in ("name", "entry", "steps")
    ]


def test_schema_prints_json_for_each_kind() -> None:
    journey = runner.invoke(_app(), ["schema"])
    segment = runner.invoke(_app(), ["schema", "--kind", "segment"])
    assert journey.exit_code == segment.exit_code == 0
    assert json.loads(journey.output)["title"] == "Journey"
    assert json.loads(segment.output)["title"] == "Segment"


def test_validate_checks_message_templates(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "good.yaml").write_text("text: hi {{ profile.first_name }}\n", encoding="utf-8")
    (templates / "bad.yaml").write_text("text: hi\nlocales: {en: 5}\n", encoding="utf-8")
    (templates / "jinja.yaml").write_text("text: '{{ person.name }}'\n", encoding="utf-8")
    folder = runner.invoke(_app(), ["validate", str(tmp_path)])
    assert folder.exit_code == 1
    assert folder.output.splitlines() == [
        f"{templates / 'bad.yaml'}: locale 'en' must map content fields to text",
        f"{templates / 'jinja.yaml'}:1: template 'jinja' field 'text': 'person' is undefined "
        "(use one of: profile, journey, step)",
    ]
    one = runner.invoke(_app(), ["validate", str(templates / "good.yaml")])
    assert (one.exit_code, one.output) == (0, "ok: 1 template\n")


def test_validate_the_examples_folder_counts_every_kind() -> None:
    result = runner.invoke(_app(), ["validate", str(EXAMPLES[0].parent)])
    assert result.exit_code == 0, result.output
    assert "14 templates" in result.output and "16 segments" in result.output
