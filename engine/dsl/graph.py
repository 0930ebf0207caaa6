"""The step graph of a journey: where each step goes next, and the checks on that graph.

`exits` is the single statement of the successor rules; the interpreter, `check_graph` and the
Mermaid drawing all follow it:

- ``wait`` / ``update`` go to ``next``, else the step below; ``send`` to ``send.next``, else below;
  a send may also name ``on_suppressed`` / ``on_failure`` (each defaulting to its success step);
- ``branch`` goes to the first matching ``when.goto``, else ``else``, else the step below;
- ``split`` goes to the chosen variant's ``goto``;
- ``wait_for`` goes to ``on_event`` / ``on_timeout``, each defaulting to the step below;
- ``exit`` ends the run, and so does "the step below" of the last step.

The checks (each a located `Problem`): duplicate step ids, targets that are not steps, steps never
reached from the first one, loops that pass through no ``wait`` / ``wait_for`` (they would spin
without time passing; a send alone does not slow a loop down), split weights that do not sum to
100, and a variant name used twice in one split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.dsl.conditions import Condition
from engine.dsl.durations import format_duration
from engine.dsl.errors import Problem
from engine.dsl.explain import close_match
from engine.dsl.models import (
    BranchStep,
    Else,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
)
from engine.dsl.source import DocPath, SourceMap

TARGET_KEYS = ("goto", "next", "else", "on_event", "on_timeout", "on_suppressed", "on_failure")
"""Keys whose value names a step."""


@dataclass(frozen=True)
class Exit:
    """One way out of a step.

    ``target`` is a step id, or None when the run ends there. ``key`` is where the target is
    written, relative to the step (``("send", "on_suppressed")``), or None when it is implicit
    (the step below). ``label`` names the way out for people: ``""`` for the plain successor,
    ``when``, ``else``, ``variant A 45%``, ``on_event order_paid``, ``timeout 2d``,
    ``suppressed``, ``failure``.
    """

    target: str | None
    label: str
    key: DocPath | None = None
    condition: Condition | None = None


def exits(journey: Journey, step: Step) -> list[Exit]:
    """Every way out of ``step`` of ``journey``, in the order the step considers them."""
    return _exits(step, journey.following(step.id))


def successors(journey: Journey, step: Step) -> list[str | None]:
    """The steps ``step`` can go to (None: the run ends), each once, in order of `exits`."""
    found: list[str | None] = []
    for way in exits(journey, step):
        if way.target not in found:
            found.append(way.target)
    return found


def check_graph(journey: Journey, source: SourceMap | None = None) -> list[Problem]:
    """Graph problems of a validated journey, located in ``source`` when given (else line 0)."""
    return check_steps(list(journey.steps), source or _unlocated(journey))


def check_steps(steps: Sequence[Step | None], source: SourceMap) -> list[Problem]:
    """Graph problems of a journey whose steps may have failed validation (None at their index).

    A step that failed validation keeps its id (when it has a readable one) and counts as leading
    to every step its raw text names and to the step below, so that its own schema problems do
    not also show up as unreachable steps further down.
    """
    raw = source.data.get("steps") if isinstance(source.data, dict) else None
    raw_steps: list[Any] = raw if isinstance(raw, list) else []
    graph = _Graph.build(steps, raw_steps)
    problems = graph.duplicate_ids(source)
    problems += graph.unknown_targets(source)
    problems += _split_problems(steps, source)
    problems += graph.unreachable(source)
    problems += graph.loops_without_wait(source)
    return sorted(problems, key=lambda p: (p.line, p.column, p.message))


def _exits(step: Step, below: str | None) -> list[Exit]:
    if isinstance(step, WaitStep | UpdateStep):
        return [_plain(step.next, below, ("next",))]
    if isinstance(step, SendStep):
        send = step.send
        success = _plain(send.next, below, ("send", "next"))
        found = [success]
        if send.on_suppressed is not None:
            found.append(Exit(send.on_suppressed, "suppressed", ("send", "on_suppressed")))
        if send.on_failure is not None:
            found.append(Exit(send.on_failure, "failure", ("send", "on_failure")))
        return found
    if isinstance(step, BranchStep):
        found = []
        for index, case in enumerate(step.branch):
            if isinstance(case, Else):
                found.append(Exit(case.else_, "else", ("branch", index, "else")))
            else:
                found.append(Exit(case.goto, "when", ("branch", index, "goto"), case.when))
        if not isinstance(step.branch[-1], Else):
            found.append(Exit(below, "else"))
        return found
    if isinstance(step, SplitStep):
        return [
            Exit(v.goto, f"variant {v.variant} {v.weight:g}%", ("split", index, "goto"))
            for index, v in enumerate(step.split)
        ]
    if isinstance(step, WaitForStep):
        spec = step.wait_for
        on_event = spec.on_event or below
        on_timeout = spec.on_timeout or below
        return [
            Exit(
                on_event,
                f"on_event {spec.event}",
                ("wait_for", "on_event") if spec.on_event else None,
            ),
            Exit(
                on_timeout,
                f"timeout {format_duration(spec.timeout)}",
                ("wait_for", "on_timeout") if spec.on_timeout else None,
            ),
        ]
    if isinstance(step, ExitStep):
        return [Exit(None, "")]
    raise TypeError(f"unknown step kind {type(step).__name__}")


def _plain(explicit: str | None, below: str | None, key: DocPath) -> Exit:
    return Exit(explicit, "", key) if explicit is not None else Exit(below, "")


@dataclass(frozen=True)
class _Node:
    index: int
    id: str | None
    step: Step | None  # None: it failed validation; its exits are guessed from its raw text
    exits: tuple[Exit, ...]


@dataclass(frozen=True)
class _Graph:
    nodes: tuple[_Node, ...]
    ids: tuple[str, ...]  # in document order, each once

    @staticmethod
    def build(steps: Sequence[Step | None], raw_steps: Sequence[Any]) -> _Graph:
        ids_by_index = [_id_of(s, raw_steps, i) for i, s in enumerate(steps)]
        nodes = []
        for index, step in enumerate(steps):
            below = ids_by_index[index + 1] if index + 1 < len(steps) else None
            if step is not None:
                ways = _exits(step, below)
            else:
                raw = raw_steps[index] if index < len(raw_steps) else None
                ways = _guessed_exits(raw, below)
            nodes.append(_Node(index, ids_by_index[index], step, tuple(ways)))
        unique = tuple(dict.fromkeys(i for i in ids_by_index if i is not None))
        return _Graph(tuple(nodes), unique)

    def indexes_of(self, step_id: str | None) -> list[int]:
        if step_id is None:
            return []
        found = [n.index for n in self.nodes if n.id == step_id]
        if not found:
            # A misspelled target most likely means the step it resembles; following it there
            # keeps one typo from also reporting that step as unreachable.
            meant = close_match(step_id, self.ids)
            found = [n.index for n in self.nodes if meant is not None and n.id == meant]
        return found

    def edges(self, node: _Node) -> list[tuple[int, Exit]]:
        return [(i, way) for way in node.exits for i in self.indexes_of(way.target)]

    def duplicate_ids(self, source: SourceMap) -> list[Problem]:
        first: dict[str, int] = {}
        problems = []
        for node in self.nodes:
            if node.id is None:
                continue
            if node.id in first:
                problems.append(
                    source.problem(
                        ("steps", node.index, "id"),
                        f"step id '{node.id}' is already used by steps[{first[node.id]}]",
                    )
                )
            else:
                first[node.id] = node.index
        return problems

    def unknown_targets(self, source: SourceMap) -> list[Problem]:
        problems = []
        for node in self.nodes:
            if node.step is None:
                continue
            for way in node.exits:
                if way.key is None or way.target is None or way.target in self.ids:
                    continue
                meant = close_match(way.target, self.ids)
                hint = f", did you mean '{meant}'?" if meant else ""
                problems.append(
                    source.problem(
                        ("steps", node.index, *way.key),
                        f"unknown step '{way.target}'{hint} (steps are: {', '.join(self.ids)})",
                    )
                )
        return problems

    def reachable_from(self, start: int, within: set[int] | None = None) -> set[int]:
        seen = {start}
        todo = [start]
        while todo:
            for nxt, _ in self.edges(self.nodes[todo.pop()]):
                if nxt not in seen and (within is None or nxt in within):
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def unreachable(self, source: SourceMap) -> list[Problem]:
        if not self.nodes:
            return []
        lost = {n.index for n in self.nodes} - self.reachable_from(0)
        problems = []
        covered: set[int] = set()
        while lost - covered:
            left = sorted(lost - covered)
            fed = {i for n in left for i, _ in self.edges(self.nodes[n]) if i != n}
            # Report where an unreachable region starts: the steps below it in the region are
            # unreachable only because it is, which is one mistake, not several.
            head = next((i for i in left if i not in fed), left[0])
            region = self.reachable_from(head, within=lost - covered)
            covered |= region
            name = self.nodes[head].id
            if name is None:
                continue
            others = dict.fromkeys(
                str(self.nodes[i].id) for i in sorted(region - {head}) if self.nodes[i].id
            )
            reason = "no step leads to it" if head not in fed else "not from the first step"
            message = f"step '{name}' is never reached: {reason}"
            if others:
                message += f" (so neither is {', '.join(others)})"
            problems.append(source.problem(("steps", head), message))
        return problems

    def loops_without_wait(self, source: SourceMap) -> list[Problem]:
        # Only steps known not to wait can spin; an unvalidated step might be the wait.
        spinning = {
            n.index
            for n in self.nodes
            if n.step is not None and not isinstance(n.step, WaitStep | WaitForStep)
        }
        onward = {i: self._reachable_after(i, spinning) for i in spinning}
        problems = []
        done: set[int] = set()
        for start in sorted(spinning):
            if start in done or start not in onward[start]:
                continue
            loop = {j for j in onward[start] if start in onward[j]}
            done |= loop
            cycle = self._cycle(start, loop)
            names = " -> ".join(str(self.nodes[c].id) for c in cycle)
            # Point at the goto that closes the loop when it is written down: that is the line
            # to change (or to put a wait before).
            last = self.nodes[cycle[-2]]
            closing = next((w.key for j, w in self.edges(last) if j == start and w.key), None)
            path: DocPath = ("steps", last.index, *closing) if closing else ("steps", start)
            problems.append(
                source.problem(
                    path,
                    f"loop with no wait: {names}; a run would go round it without time passing "
                    "(add a wait or wait_for step to the loop)",
                )
            )
        return problems

    def _reachable_after(self, start: int, within: set[int]) -> set[int]:
        """Steps reachable from ``start`` in one move or more, staying ``within``."""
        seen: set[int] = set()
        todo = [start]
        while todo:
            for nxt, _ in self.edges(self.nodes[todo.pop()]):
                if nxt in within and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def _cycle(self, start: int, loop: set[int]) -> list[int]:
        """The shortest way from ``start`` back to itself through ``loop``."""
        previous: dict[int, int] = {}
        frontier = [start]
        while frontier:
            following = []
            for at in frontier:
                for nxt, _ in self.edges(self.nodes[at]):
                    if nxt == start:
                        chain = [at]
                        while chain[-1] != start:
                            chain.append(previous[chain[-1]])
                        return [*reversed(chain), start]
                    if nxt in loop and nxt not in previous:
                        previous[nxt] = at
                        following.append(nxt)
            frontier = following
        return [start, start]


def _split_problems(steps: Sequence[Step | None], source: SourceMap) -> list[Problem]:
    problems = []
    for index, step in enumerate(steps):
        if not isinstance(step, SplitStep):
            continue
        total = sum(v.weight for v in step.split)
        if abs(total - 100) > 1e-9:
            problems.append(
                source.problem(
                    ("steps", index, "split"),
                    f"split weights add up to {total:g}; they must add up to 100",
                    key=True,
                )
            )
        seen: set[str] = set()
        for number, variant in enumerate(step.split):
            if variant.variant in seen:
                problems.append(
                    source.problem(
                        ("steps", index, "split", number, "variant"),
                        f"variant '{variant.variant}' appears twice in this split",
                    )
                )
            seen.add(variant.variant)
    return problems


def _id_of(step: Step | None, raw_steps: Sequence[Any], index: int) -> str | None:
    if step is not None:
        return step.id
    raw = raw_steps[index] if index < len(raw_steps) else None
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _guessed_exits(raw: Any, below: str | None) -> list[Exit]:
    named: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in TARGET_KEYS and isinstance(inner, str):
                    named.append(inner)
                else:
                    collect(inner)
        elif isinstance(value, list):
            for inner in value:
                collect(inner)

    collect(raw)
    ends = isinstance(raw, dict) and "exit" in raw
    return [Exit(t, "") for t in named] + ([] if ends else [Exit(below, "")])


def _unlocated(journey: Journey) -> SourceMap:
    data = journey.model_dump(mode="json", by_alias=True)
    return SourceMap(file=f"<journey {journey.id}>", data=data, tree=data, located=False)
