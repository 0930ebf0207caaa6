"""A journey as a Mermaid flowchart, for review in a pull request or a wiki page.

One node per step (its id and what it does: ``wait 1h``, ``send sms: cart_b``), one edge per way
out of it as `engine.dsl.graph.exits` defines them, labelled the way a marketer reads them
(``when cart_value gte 200``, ``variant A 45%``, ``timeout 2d``, ``suppressed``).
"""

from __future__ import annotations

from engine.dsl.conditions import (
    AllCondition,
    AnyCondition,
    AttributeCondition,
    Condition,
    NotCondition,
    TagCondition,
)
from engine.dsl.durations import format_duration
from engine.dsl.graph import exits
from engine.dsl.models import (
    BranchStep,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
    WaitUntil,
)

_END = "run_end"
_LABEL_LIMIT = 48


def to_mermaid(journey: Journey) -> str:
    """Mermaid ``flowchart TD`` text for ``journey`` (ends with a newline).

    Node ids are positional (``s0``, ``s1`` ...) because step ids such as ``end`` are Mermaid
    keywords; the step id is the first line of each node's label.
    """
    node_ids = {step.id: f"s{index}" for index, step in reversed(list(enumerate(journey.steps)))}
    lines = ["flowchart TD"]
    for index, step in enumerate(journey.steps):
        lines.append(f"    s{index}{_shape(step, f'{step.id}<br/>{describe_step(step)}')}")
    ends = False
    for index, step in enumerate(journey.steps):
        for way in exits(journey, step):
            if way.target is None:
                if isinstance(step, ExitStep):
                    continue
                ends = True
                target = _END
            elif way.target in node_ids:
                target = node_ids[way.target]
            else:
                continue  # an unknown step: validation reports it, the drawing leaves it out
            label = way.label
            if label == "when" and way.condition is not None:
                label = f"when {describe_condition(way.condition)}"
            arrow = f' -->|"{_text(label)}"| ' if label else " --> "
            lines.append(f"    s{index}{arrow}{target}")
    if ends:
        lines.append(f"    {_END}((end))")
    return "\n".join(lines) + "\n"


def describe_step(step: Step) -> str:
    """A few words on what ``step`` does: ``wait 1h``, ``send sms: cart_b``, ``exit``."""
    if isinstance(step, WaitStep):
        if isinstance(step.wait, WaitUntil):
            return f"wait until {step.wait.until}"
        return f"wait {format_duration(step.wait)}"
    if isinstance(step, WaitForStep):
        spec = step.wait_for
        return f"wait for {spec.event}, up to {format_duration(spec.timeout)}"
    if isinstance(step, BranchStep):
        return "branch"
    if isinstance(step, SplitStep):
        return "split " + " / ".join(v.variant for v in step.split)
    if isinstance(step, SendStep):
        return f"send {step.send.channel}: {step.send.template}"
    if isinstance(step, UpdateStep):
        return "update profile"
    if isinstance(step, ExitStep):
        return f"exit: {step.exit.reason}" if step.exit.reason else "exit"
    raise TypeError(f"unknown step kind {type(step).__name__}")


def describe_condition(condition: Condition) -> str:
    """A condition in words, shortened: ``cart_value gte 200``, ``tag vip and not tag paid``."""
    text = _condition(condition)
    return text if len(text) <= _LABEL_LIMIT else text[: _LABEL_LIMIT - 3] + "..."


def _condition(condition: Condition) -> str:
    if isinstance(condition, AttributeCondition):
        operand = condition.operand(condition.operator)
        if isinstance(operand, list | tuple):
            operand = "[" + ", ".join(str(o) for o in operand) + "]"
        return f"{condition.attribute} {condition.operator} {operand}"
    if isinstance(condition, TagCondition):
        return f"tag {condition.tag}"
    if isinstance(condition, AllCondition):
        return " and ".join(_nested(c) for c in condition.all)
    if isinstance(condition, AnyCondition):
        return " or ".join(_nested(c) for c in condition.any)
    if isinstance(condition, NotCondition):
        return f"not {_nested(condition.not_)}"
    raise TypeError(f"unknown condition {type(condition).__name__}")


def _nested(condition: Condition) -> str:
    text = _condition(condition)
    return f"({text})" if isinstance(condition, AllCondition | AnyCondition) else text


def _shape(step: Step, label: str) -> str:
    text = f'"{_text(label)}"'
    if isinstance(step, BranchStep | SplitStep):
        return "{" + text + "}"
    if isinstance(step, ExitStep):
        return f"([{text}])"
    return f"[{text}]"


def _text(label: str) -> str:
    # Inside a quoted Mermaid label only the quote itself needs an entity.
    return label.replace('"', "#quot;")
