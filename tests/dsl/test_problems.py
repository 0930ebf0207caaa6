"""A broken file gives one located problem per mistake, in words a marketer can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.dsl.errors import DslError, Problem
from engine.dsl.loader import (
    UNRECOGNISED,
    load_document,
    load_journey,
    load_segment,
    parse_journey_text,
    validate_paths,
)
from engine.dsl.policy import Policy
from tests.dsl.helpers import journey_problems, located

HEAD = """\
id: j
name: J
entry: {event: signed_up}
steps:
"""

SEVEN_MISTAKES = """\
id: broken
name: Broken journey
entry: {event: signed_up}
steps:
  - id: pause
    wait: 1x
  - id: choose
    split:
      - {variant: A, weight: 45, goto: greet}
      - {variant: B, weight: 45, goto: greet_b}
  - id: greet
    send: {channel: sms, tempalte: hello}
  - id: greet_b
    send: {channel: sms, template: hello_b, next: check, on_failure: nowhere}
  - id: check
    branch:
      - {when: {tag: vip}, goto: again}
  - id: again
    update: {add_tags: [seen]}
    next: check
  - id: greet
    exit: {}
  - id: orphan
    exit: {}
"""


def test_seven_mistakes_give_seven_problems_at_their_places() -> None:
    problems = journey_problems(SEVEN_MISTAKES)
    assert located(problems) == [
        (6, 11, "steps[0](id=pause).wait"),
        (8, 5, "steps[1](id=choose).split"),
        (12, 26, "steps[2](id=greet).send.tempalte"),
        (14, 70, "steps[3](id=greet_b).send.on_failure"),
        (20, 11, "steps[5](id=again).next"),
        (21, 9, "steps[6](id=greet).id"),
        (23, 5, "steps[7](id=orphan)"),
    ]
    messages = [p.message for p in problems]
    assert messages[0].startswith("expected a duration such as 30m, 1h, 2d or 1w")
    assert messages[0].endswith("got '1x'")
    assert messages[1] == "split weights add up to 90; they must add up to 100"
    assert messages[2].startswith("unknown key 'tempalte', did you mean 'template'?")
    assert messages[3].startswith("unknown step 'nowhere' (steps are: pause, choose, greet,")
    assert messages[4].startswith("loop with no wait: check -> again -> check")
    assert messages[5] == "step id 'greet' is already used by steps[2]"
    assert messages[6] == "step 'orphan' is never reached: no step leads to it"


def test_problem_prints_as_file_line_column_where_message() -> None:
    problem = Problem("j.yaml", 6, 11, "steps[0](id=pause).wait", "expected a duration")
    assert str(problem) == "j.yaml:6:11: steps[0](id=pause).wait: expected a duration"
    error = DslError([problem, problem])
    assert str(error) == f"{problem}\n{problem}"


@pytest.mark.parametrize(
    ("steps", "where", "line", "column", "message"),
    [
        pytest.param(
            "  - id: a\n    wiat: 1h\n",
            "steps[0](id=a).wiat",
            6,
            5,
            "unknown key 'wiat', did you mean 'wait'? (a step has one of the keys wait, "
            "wait_for, branch, split, send, update, exit)",
            id="misspelled step kind",
        ),
        pytest.param(
            "  - id: a\n    wait: 1h\n    nxt: b\n  - id: b\n    exit:\n",
            "steps[0](id=a).nxt",
            7,
            5,
            "unknown key 'nxt', did you mean 'next'? (expected one of: id, wait, next)",
            id="misspelled key",
        ),
        pytest.param(
            "  - id: a\n    send: {channel: sms}\n",
            "steps[0](id=a).send",
            6,
            11,
            "missing key 'template'",
            id="missing key at its mapping",
        ),
        pytest.param(
            "  - id: a\n    wait: 5\n",
            "steps[0](id=a).wait",
            6,
            11,
            "expected a duration such as 30m, 1h, 2d or 1w, or a time of day "
            "{until: '10:00'}, got 5",
            id="wait neither duration nor time",
        ),
        pytest.param(
            "  - id: a\n    wait: {until: '25:00'}\n",
            "steps[0](id=a).wait.until",
            6,
            19,
            "expected a time of day HH:MM such as '10:00', got '25:00'",
            id="bad time of day",
        ),
        pytest.param(
            "  - id: a\n    branch:\n      - {when: {attribute: x, gte: [1]}, goto: b}\n"
            "  - id: b\n    exit:\n",
            "steps[0](id=a).branch[0].when.gte",
            7,
            36,
            "expected a number or text, got [1]",
            id="union members merged",
        ),
        pytest.param(
            "  - id: a\n    branch:\n      - {when: {attribut: x, gte: 1}, goto: b}\n"
            "  - id: b\n    exit:\n",
            "steps[0](id=a).branch[0].when.attribut",
            7,
            17,
            "unknown key 'attribut', did you mean 'attribute'? (a condition has one of the "
            "keys attribute, tag, all, any, not)",
            id="misspelled condition",
        ),
        pytest.param(
            "  - id: a\n    branch:\n      - {when: {tag: vip}, goto: b}\n      - {els: b}\n"
            "  - id: b\n    exit:\n",
            "steps[0](id=a).branch[1].els",
            8,
            10,
            "unknown key 'els', did you mean 'else'? (a branch case has one of the keys when, "
            "else)",
            id="misspelled else",
        ),
        pytest.param(
            "  - id: a\n    branch:\n      - {else: b}\n      - {when: {tag: vip}, goto: b}\n"
            "  - id: b\n    exit:\n",
            "steps[0](id=a).branch",
            7,
            7,
            "'else' must be the last case of a branch",
            id="else not last",
        ),
        pytest.param(
            "  - id: a\n    wait: 1h\n    send: {channel: sms, template: t}\n",
            "steps[0](id=a).send",
            7,
            5,
            "a step has exactly one of the keys wait, wait_for, branch, split, send, update, "
            "exit; this one has 'wait' and 'send'",
            id="two kinds",
        ),
        pytest.param(
            "  - just text\n",
            "steps[0]",
            5,
            5,
            "expected a step: a mapping with one of the keys wait, wait_for, branch, split, "
            "send, update, exit, got 'just text'",
            id="not a mapping",
        ),
        pytest.param(
            "  - id: Big Step\n    exit:\n",
            "steps[0](id=Big Step).id",
            5,
            9,
            "expected an id of lower-case letters, digits, '-' and '_' (such as cart_a), "
            "got 'Big Step'",
            id="bad id",
        ),
        pytest.param(
            "  - id: a\n    split:\n      - {variant: A, weight: 101, goto: b}\n"
            "      - {variant: B, weight: 0, goto: b}\n  - id: b\n    exit:\n",
            "steps[0](id=a).split[0].weight",
            7,
            30,
            "expected at most 100, got 101",
            id="weight out of range",
        ),
        pytest.param(
            "  - id: a\n    branch:\n      - {when: {attribute: d, between: [60]}, goto: b}\n"
            "  - id: b\n    exit:\n",
            "steps[0](id=a).branch[0].when.between",
            7,
            40,
            "between takes two values [low, high], got [60]",
            id="between one value",
        ),
    ],
)
def test_one_mistake_one_problem(
    steps: str, where: str, line: int, column: int, message: str
) -> None:
    problems = journey_problems(HEAD + steps)
    assert [(p.line, p.column, p.where, p.message) for p in problems] == [
        (line, column, where, message)
    ]


def test_top_level_mistakes() -> None:
    problems = journey_problems(
        """\
        id: j
        entry: {segment: s, schedul: "0 10 * * *"}
        reentry: {policy: sometimes}
        steps:
          - id: a
            exit:
        """
    )
    assert [(p.line, p.column, p.where, p.message) for p in problems] == [
        (1, 1, "top level", "missing key 'name'"),
        (
            2,
            21,
            "entry.schedul",
            "unknown key 'schedul', did you mean 'schedule'? (expected one of: segment, schedule)",
        ),
        (3, 19, "reentry.policy", "expected 'once', 'after' or 'always', got 'sometimes'"),
    ]


def test_a_reentry_rule_is_reported_at_its_mapping() -> None:
    problems = journey_problems(
        HEAD.replace("steps:", "reentry: {policy: after}\nsteps:") + ("  - id: a\n    exit:\n")
    )
    assert [(p.line, p.column, p.where) for p in problems] == [(4, 10, "reentry")]
    assert "needs a cooldown" in problems[0].message


def test_no_pydantic_jargon_reaches_the_marketer() -> None:
    problems = journey_problems(SEVEN_MISTAKES + "  - {id: x, wait: [1], send: 3}\n")
    for problem in problems:
        for jargon in ("function-before", "Input should", "instance of", "Value error", "union"):
            assert jargon not in problem.message


def test_yaml_syntax_error_is_located() -> None:
    problems = journey_problems(HEAD + "  - id: a\n    wait: 1h: 2h\n")
    assert [(p.line, p.column, p.where) for p in problems] == [(6, 13, "top level")]
    assert problems[0].message == "YAML syntax error: mapping values are not allowed here"


def test_duplicate_yaml_key_is_located() -> None:
    problems = journey_problems(HEAD + "  - id: a\n    wait: 1h\n    wait: 2h\n")
    assert [(p.line, p.column) for p in problems] == [(7, 5)]
    assert 'duplicate key "wait"' in problems[0].message


def test_a_valid_journey_loads() -> None:
    journey = parse_journey_text(HEAD + "  - id: a\n    wait: 1h\n  - id: b\n    exit:\n")
    assert [s.id for s in journey.steps] == ["a", "b"]


def test_load_journey_and_load_segment_raise_located_problems(tmp_path: Path) -> None:
    journey = tmp_path / "j.yaml"
    journey.write_text(HEAD + "  - id: a\n    wait: 1x\n", encoding="utf-8")
    with pytest.raises(DslError) as caught:
        load_journey(journey)
    assert str(caught.value).startswith(f"{journey}:6:11: steps[0](id=a).wait: ")

    segment = tmp_path / "s.yaml"
    segment.write_text("id: s\nname: S\ncondition: {tga: vip}\n", encoding="utf-8")
    with pytest.raises(DslError) as caught:
        load_segment(segment)
    assert [(p.line, p.column, p.where) for p in caught.value.problems] == [
        (3, 13, "condition.tga")
    ]


def test_documents_are_recognised_by_folder_or_keys(tmp_path: Path) -> None:
    (tmp_path / "segments").mkdir()
    by_folder = tmp_path / "segments" / "vip.yaml"
    by_folder.write_text("id: vip\nname: VIP\ncondition: {tag: vip}\n", encoding="utf-8")
    by_key = tmp_path / "vip2.yaml"
    by_key.write_text("id: vip2\nname: VIP\ncondition: {tag: vip}\n", encoding="utf-8")
    assert load_document(by_folder).id == "vip"
    assert load_document(by_key).id == "vip2"

    policy = tmp_path / "policy.yaml"
    policy.write_text("timezone: America/New_York\n", encoding="utf-8")
    assert isinstance(load_document(policy), Policy)

    other = tmp_path / "notes.yaml"
    other.write_text("timezone: Asia/Shanghai\n", encoding="utf-8")
    with pytest.raises(DslError) as caught:
        load_document(other)
    assert [str(p) for p in caught.value.problems] == [f"{other}:1:1: top level: {UNRECOGNISED}"]


def test_validate_paths_reports_every_file(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "bad.yml").write_text(HEAD + "  - id: a\n    wait: 1x\n", "utf-8")
    (tmp_path / "good.yaml").write_text(HEAD + "  - id: a\n    exit:\n", encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "cart_a.yaml").write_text("text: hello\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not yaml", encoding="utf-8")
    missing = tmp_path / "missing.yaml"
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()

    problems = validate_paths([tmp_path, missing, empty_folder])

    assert [(Path(p.file).name, p.line, p.column) for p in problems] == [
        ("bad.yml", 6, 11),
        ("missing.yaml", 0, 0),
        ("empty", 0, 0),
    ]
    assert problems[1].message == "no such file"


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    problems = validate_paths([empty, listing])
    assert [p.message for p in problems] == [UNRECOGNISED] * 2
    with pytest.raises(DslError) as caught:
        load_journey(empty)
    assert caught.value.problems[0].message == "expected a mapping (key: value), got nothing"


def test_a_webhook_target_is_checked_where_it_is_written() -> None:
    problems = journey_problems(
        HEAD
        + """\
  - id: crm
    send:
      channel: webhook
      template: lead
      webhook: {url: "crm.example.com/hook", secret_env: crm-secret}
  - id: sms
    send:
      channel: sms
      template: lead
      webhook: {url: "https://crm.example.com/hook"}
"""
    )
    assert [(p.line, p.column, p.where) for p in problems] == [
        (9, 22, "steps[0](id=crm).send.webhook.url"),
        (9, 58, "steps[0](id=crm).send.webhook.secret_env"),
        (14, 16, "steps[1](id=sms).send.webhook"),
    ]
    assert "absolute http(s) URL" in problems[0].message
    assert "environment variable name" in problems[1].message
    assert "channel: webhook" in problems[2].message
