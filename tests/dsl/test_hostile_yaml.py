"""Hostile YAML (alias bombs, recursive aliases, deep nesting, noise): every file the engine reads
gives "ok" or located problems, fast and in bounded memory, never a traceback."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dsl.errors import DslError
from engine.dsl.loader import check_paths, parse_journey_text
from engine.templates import TemplateError, load_templates

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1024 * 1024 * 1024  # address space of the CLI run; the bomb asked for far more
PEAK_LIMIT = 64 * 1024 * 1024  # Python allocations while checking one fuzzed file

HEAD = "id: j\nname: J\nentry: {event: x}\n"
TAIL = "steps:\n  - {id: done, exit: {}}\n"


def laughs(width: int, depth: int, shape: str) -> str:
    """``depth`` levels of anchors, each level ``width`` aliases of the one before."""
    if shape == "map":
        lines = ["l0: &l0 {" + ", ".join(f"k{i}: lol" for i in range(width)) + "}"]
        item = "{" + ", ".join(f"k{i}: *l{{prev}}" for i in range(width)) + "}"
    elif shape == "merge":
        lines = ["l0: &l0 {" + ", ".join(f"k{i}: lol" for i in range(width)) + "}"]
        item = "{<<: *l{prev}, " + ", ".join(f"m{i}: *l{{prev}}" for i in range(width)) + "}"
    else:
        lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
        item = "[" + ", ".join(["*l{prev}"] * width) + "]"
    for level in range(1, depth + 1):
        lines.append(f"l{level}: &l{level} " + item.replace("{prev}", str(level - 1)))
    return "\n".join(lines) + "\n"


def bomb_journey(width: int, depth: int, shape: str) -> str:
    return HEAD + laughs(width, depth, shape) + TAIL


def nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{a: ": "}"}[opener]
    return HEAD + "deep: " + opener * depth + "x" + closer * depth + "\n" + TAIL


def recursive(shape: str) -> str:
    value = {"list": "&r [a, *r]", "map": "&r {a: *r}", "merge": "&r {a: 1, b: {<<: *r}}"}[shape]
    return HEAD + f"loop: {value}\n" + TAIL


TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!set", "!!omap"]
TAGS += ["!!pairs", "!!str", "!!map", "!!seq", "!!merge", "!!python/name:os.system", "!x"]
TAGGED = st.tuples(
    st.sampled_from(TAGS),
    st.sampled_from(["xyz", "maybe", "2026-02-30", "'%%'", "[a]", "{a: 1}", "9" * 5000, ""]),
).map(lambda t: HEAD + f"priority: {t[0]} {t[1]}\n" + TAIL)


HOSTILE = st.one_of(
    TAGGED,
    st.builds(
        bomb_journey,
        width=st.integers(2, 12),
        depth=st.integers(1, 12),
        shape=st.sampled_from(["list", "map", "merge"]),
    ),
    st.builds(nested, depth=st.integers(1, 400), opener=st.sampled_from(["[", "{a: "])),
    st.builds(recursive, shape=st.sampled_from(["list", "map", "merge"])),
    # Noise in YAML's own punctuation: undefined aliases, stray anchors, tags, broken flows.
    st.text(alphabet="&*[]{}:,-!|>'\"#?<\n abl01", max_size=120),
    st.text(alphabet="&*[]{}:,-<\n ab", max_size=60).map(lambda t: HEAD + t + "\n" + TAIL),
)


def _check_everywhere(text: str) -> None:
    """``text`` as a journey, a segment, the policy, the tiers file and a template."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = [root / "j.yaml", root / "segments" / "s.yaml", root / "policy.yaml"]
        paths.append(root / "tiers.yaml")
        (root / "segments").mkdir()
        (root / "templates").mkdir()
        for path in [*paths, root / "templates" / "t.yaml"]:
            path.write_text(text, encoding="utf-8")
        lines = text.count("\n") + 1
        for checked in check_paths(paths):
            assert checked.document is not None or checked.problems
            for problem in checked.problems:
                assert 1 <= problem.line <= lines, problem
                assert problem.column >= 1, problem
        try:
            load_templates(root / "templates", ["t"])
        except TemplateError as exc:
            assert str(exc).startswith(str(root / "templates" / "t.yaml")), exc


@pytest.mark.timeout(600)
@settings(
    max_examples=100,
    deadline=timedelta(seconds=20),  # a guard against hangs, not a measurement
    suppress_health_check=[HealthCheck.too_slow],
)
@given(HOSTILE)
def test_hostile_yaml_gives_ok_or_located_problems_in_bounded_memory(text: str) -> None:
    tracemalloc.start()
    try:
        _check_everywhere(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{peak / 1e6:.0f} MB to check {len(text)} characters"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.timeout(120)
def test_validate_refuses_a_billion_laughs_at_the_alias(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(bomb_journey(width=9, depth=8, shape="list"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "validate", str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,  # the unguarded loader ran past a minute, then out of memory
        preexec_fn=_limit_memory,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    # l5 is the first level past 100,000 values (9**6 = 531,441); line 9 of the file.
    assert result.stdout.startswith(f"{bomb}:9:"), result.stdout
    assert "alias *l4 makes the document hold more than 100,000 values" in result.stdout


def test_templates_refuse_a_billion_laughs_at_the_alias(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("text: hi\n" + laughs(9, 8, "list"), encoding="utf-8")
    with pytest.raises(TemplateError) as raised:
        load_templates(tmp_path, ["t"])
    assert str(raised.value).startswith(f"{tmp_path / 't.yaml'}:7:")
    assert "out of proportion to its size" in str(raised.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!int xyz", "invalid literal for int() with base 10: 'xyz'"),
        ("9" * 5000, "Exceeds the limit (4300 digits) for integer string conversion"),
        ("!!bool maybe", "'maybe'"),
        ("2026-02-30", "day is out of range for month"),
    ],
)
def test_a_value_that_cannot_be_built_is_located(value: str, message: str) -> None:
    with pytest.raises(DslError) as raised:
        parse_journey_text(HEAD + f"priority: {value}\n" + TAIL, "j.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.column) == (4, 11)
    assert problem.message.startswith("cannot read this value: ")
    assert message in problem.message


def test_merged_keys_are_reported_where_the_merged_mapping_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(
        HEAD + "defaults: &d {wiat: 1h}\nsteps:\n  - {<<: *d, id: done, exit: {}}\n",
        encoding="utf-8",
    )
    [checked] = check_paths([path])
    assert [str(p) for p in checked.problems] == [
        f"{path}:4:1: defaults: unknown key 'defaults' (expected one of: id, name, description, "
        "priority, entry, reentry, goal, exit_on, caps, tags, budget, target, steps)",
        f"{path}:4:15: steps[0](id=done).wiat: unknown key 'wiat' (expected one of: id, exit)",
    ]
