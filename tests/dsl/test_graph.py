"""The successor rules and the graph checks: targets, reachability, loops, splits."""

from __future__ import annotations

from engine.dsl.graph import check_graph, exits, successors
from engine.dsl.loader import load_journey, parse_journey_text
from engine.dsl.models import EventEntry, ExitStep, Journey
from tests.dsl.helpers import EXAMPLE_JOURNEYS, journey_problems

HEAD = "id: j\nname: J\nentry: {event: signed_up}\nsteps:\n"


def test_successors_follow_the_documented_rules() -> None:
    journey = load_journey(EXAMPLE_JOURNEYS[0])
    got = {step.id: successors(journey, step) for step in journey.steps}
    assert got == {
        "pause": ["value"],  # wait: the step below
        "value": ["vip_offer", "test"],  # branch: when.goto, then else
        "test": ["copy_a", "copy_b", "done"],  # split: each variant's goto
        "copy_a": ["wait_pay"],  # send: send.next
        "copy_b": ["wait_pay"],
        "vip_offer": ["wait_pay"],  # send without next: the step below
        "wait_pay": ["done", "nudge"],  # wait_for: on_event, on_timeout
        "nudge": ["done"],  # below and on_suppressed are both done
        "done": [None],  # exit ends the run
    }


def test_exits_carry_labels_for_people() -> None:
    journey = load_journey(EXAMPLE_JOURNEYS[0])
    labels = {s.id: [w.label for w in exits(journey, s)] for s in journey.steps}
    assert labels["test"] == ["variant A 45%", "variant B 45%", "variant holdout 10%"]
    assert labels["wait_pay"] == ["on_event order_paid", "timeout 2d"]
    assert labels["nudge"] == ["", "suppressed"]
    assert labels["value"] == ["when", "else"]


def test_defaults_go_to_the_step_below_and_the_last_step_ends_the_run() -> None:
    journey = parse_journey_text(
        HEAD
        + "  - id: a\n    wait_for: {event: paid, timeout: 1d}\n"
        + "  - id: b\n    branch:\n      - {when: {tag: vip}, goto: a}\n"
        + "  - id: c\n    send: {channel: sms, template: t, on_failure: a}\n"
    )
    a, b, c = journey.steps
    assert successors(journey, a) == ["b"]
    assert successors(journey, b) == ["a", "c"]
    assert successors(journey, c) == [None, "a"]  # last step, not an exit: the run ends


def test_a_loop_through_a_wait_is_fine() -> None:
    parse_journey_text(
        HEAD
        + "  - id: remind\n    send: {channel: sms, template: t}\n"
        + "  - id: later\n    wait: 1d\n    next: remind\n"
    )


def test_a_send_alone_does_not_make_a_loop_wait() -> None:
    problems = journey_problems(
        HEAD + "  - id: spam\n    send: {channel: sms, template: t, next: spam}\n"
    )
    assert [(p.line, p.column, p.where) for p in problems] == [
        (6, 45, "steps[0](id=spam).send.next")
    ]
    assert problems[0].message.startswith("loop with no wait: spam -> spam;")


def test_a_loop_closed_by_the_step_below_is_reported_at_its_first_step() -> None:
    problems = journey_problems(
        HEAD
        + "  - id: a\n    branch:\n      - {when: {tag: vip}, goto: b}\n"
        + "  - id: b\n    update: {add_tags: [x]}\n    next: a\n"
    )
    assert [(p.line, p.column) for p in problems] == [(10, 11)]
    assert problems[0].message.startswith("loop with no wait: a -> b -> a;")


def test_weights_may_be_fractions_that_sum_to_100() -> None:
    parse_journey_text(
        HEAD
        + "  - id: s\n    split:\n"
        + "      - {variant: A, weight: 33.3, goto: e}\n"
        + "      - {variant: B, weight: 33.3, goto: e}\n"
        + "      - {variant: C, weight: 33.4, goto: e}\n"
        + "  - id: e\n    exit:\n"
    )


def test_duplicate_variant_is_reported_at_the_second_one() -> None:
    problems = journey_problems(
        HEAD
        + "  - id: s\n    split:\n"
        + "      - {variant: A, weight: 50, goto: e}\n"
        + "      - {variant: A, weight: 50, goto: e}\n"
        + "  - id: e\n    exit:\n"
    )
    assert [(p.line, p.column, p.message) for p in problems] == [
        (8, 19, "variant 'A' appears twice in this split")
    ]


def test_a_misspelled_target_is_one_problem_not_two() -> None:
    # `done` is reached only through the typo; it is not also reported as unreachable.
    problems = journey_problems(
        HEAD
        + "  - id: a\n    send: {channel: sms, template: t, next: dnoe}\n"
        + "  - id: b\n    exit:\n"
        + "  - id: done\n    exit:\n"
    )
    assert [(p.line, p.column, p.message) for p in problems] == [
        (6, 45, "unknown step 'dnoe', did you mean 'done'? (steps are: a, b, done)"),
        (7, 5, "step 'b' is never reached: no step leads to it"),
    ]


def test_an_unreachable_region_is_one_problem() -> None:
    problems = journey_problems(
        HEAD
        + "  - id: a\n    exit:\n"
        + "  - id: lost\n    wait: 1h\n"
        + "  - id: also_lost\n    exit:\n"
    )
    assert [(p.line, p.column, p.message) for p in problems] == [
        (7, 5, "step 'lost' is never reached: no step leads to it (so neither is also_lost)")
    ]


def test_a_step_with_a_schema_problem_still_leads_on() -> None:
    problems = journey_problems(
        HEAD + "  - id: a\n    wait: 1h\n  - id: b\n    wiat: 1h\n  - id: c\n    exit:\n"
    )
    assert [p.where for p in problems] == ["steps[1](id=b).wiat"]


def test_graph_of_a_journey_built_in_code_has_no_positions() -> None:
    journey = Journey(
        id="j",
        name="J",
        entry=EventEntry(event="signed_up"),
        steps=[ExitStep(id="a"), ExitStep(id="b")],
    )
    problems = check_graph(journey)
    assert [(p.file, p.line, p.column, p.where) for p in problems] == [
        ("<journey j>", 0, 0, "steps[1](id=b)")
    ]


def test_examples_have_no_graph_problems() -> None:
    for path in EXAMPLE_JOURNEYS:
        assert check_graph(load_journey(path)) == []
