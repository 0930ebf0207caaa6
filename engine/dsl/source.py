"""A YAML document with the position of every key and value, addressed by document path.

ruamel.yaml's round-trip loader remembers where each mapping key, mapping value and sequence item
starts; `SourceMap` keeps that tree beside plain Python data (what pydantic validates), so that
any path a validator reports -- ``("steps", 3, "send", "channel")`` -- can be turned back into
``file:line:column`` and a readable ``steps[3](id=nudge).send.channel``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import MarkedYAMLError, YAMLError

from engine.dsl.bounded_yaml import YamlRefused, load_yaml
from engine.dsl.errors import DslError, Problem

PathPart = str | int
DocPath = tuple[PathPart, ...]

TOP = "top level"
"""``where`` of a problem about the document as a whole (e.g. a missing top-level key)."""


@dataclass(frozen=True)
class SourceMap:
    """Plain ``data`` for validation and the positioned ``tree`` it came from.

    A missing part of a path is not an error here: positions fall back to the deepest node that
    exists, which is where a missing key should be reported anyway.
    """

    file: str
    data: Any
    tree: Any
    located: bool = True  # False for data not read from a file: every position is 0:0

    def node(self, path: Sequence[PathPart]) -> Any:
        """The tree node at ``path``; raises KeyError when the path does not exist."""
        node = self.tree
        for part in path:
            node = child(node, part)
        return node

    def position(self, path: Sequence[PathPart], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the value at ``path``, or of its key when ``key`` is true.

        A key whose value is empty (``exit:``) is reported at the key: the empty value has no
        place of its own worth pointing at.
        """
        if not self.located:
            return 0, 0
        line, column = _start(self.tree)
        node = self.tree
        for index, part in enumerate(path):
            try:
                inner = child(node, part)
            except KeyError:
                break
            last = index == len(path) - 1
            if isinstance(part, str) and hasattr(node, "lc"):
                at_key = (last and key) or inner is None
                line, column = _key_position(node, key_as_written(node, part), at_key)
            elif isinstance(part, int) and hasattr(node, "lc"):
                line, column = node.lc.item(part)
            node = inner
        return line + 1, column + 1

    def where(self, path: Sequence[PathPart]) -> str:
        """``steps[3](id=nudge).send.channel``: the path as a marketer can find it."""
        text = ""
        node: Any = self.tree
        for part in path:
            try:
                node = child(node, part)
            except KeyError:
                node = None
            if isinstance(part, int):
                text += f"[{part}]"
                step_id = node.get("id") if isinstance(node, dict) else None
                if isinstance(step_id, str):
                    text += f"(id={step_id})"
            else:
                text += f".{part}" if text else part
        return text or TOP

    def problem(self, path: Sequence[PathPart], message: str, *, key: bool = False) -> Problem:
        """A Problem located at ``path`` (at its key when ``key``)."""
        line, column = self.position(path, key=key)
        return Problem(self.file, line, column, self.where(path), message)


def read_yaml(text: str, file: str) -> SourceMap:
    """Parse one YAML document; a syntax error, or a document that aliases would expand out of
    proportion to its size (`engine.dsl.bounded_yaml`), raises DslError with its line and column.
    """
    try:
        tree = load_yaml(text)
    except YAMLError as exc:
        raise DslError([syntax_problem(exc, file)]) from None
    return SourceMap(file=file, data=plain(tree), tree=tree)


def syntax_problem(exc: YAMLError, file: str) -> Problem:
    """A YAML error as a located Problem (1:1 when the parser gives no position)."""
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        if isinstance(exc, YamlRefused):
            return Problem(file, mark.line + 1, mark.column + 1, TOP, str(exc.problem))
        message = f"YAML syntax error: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        return Problem(file, mark.line + 1, mark.column + 1, TOP, message)
    return Problem(file, 1, 1, TOP, f"YAML syntax error: {exc}")


def plain(node: Any) -> Any:
    """ruamel's round-trip objects as plain dict / list / str / int / float / bool / None.

    Validation sees exactly what a safe loader would give, so pydantic's checks and error inputs
    do not depend on ruamel's formatting-preserving subclasses.
    """
    if isinstance(node, dict):
        # Keys are names in this language: `1: x` is an unknown key '1', not a type error.
        return {str(plain(k)): plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [plain(v) for v in node]
    # bool before int: ruamel's ScalarBoolean is an int subclass.
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.date):
        # No field takes a date; as text, `within: 2026-01-01` reads "got '2026-01-01'".
        return str(node)
    if node is None:
        return node
    value = getattr(node, "value", None)  # a tagged scalar (!tag text): keep the text
    return str(value) if value is not None else str(node)


def key_as_written(node: Any, part: PathPart) -> Any:
    """The key of mapping ``node`` that `plain` turned into ``part`` (``1`` for ``"1"``)."""
    if part in node:
        return part
    for written in node:
        if str(written) == part:
            return written
    raise KeyError(part)


def has(node: Any, part: PathPart) -> bool:
    """Whether ``node`` has a key or index ``part`` (as `plain` names it)."""
    try:
        child(node, part)
    except KeyError:
        return False
    return True


def child(node: Any, part: PathPart) -> Any:
    """The value at key or index ``part`` of ``node``; KeyError when there is none."""
    if isinstance(node, dict):
        return node[key_as_written(node, part)]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    raise KeyError(part)


def _key_position(node: Any, written: Any, at_key: bool) -> tuple[int, int]:
    """0-based position of key ``written`` of mapping ``node`` (of its value unless ``at_key``).

    A key brought in by a merge (``<<: *defaults``) is positioned where the merged mapping
    writes it; the mapping itself when ruamel kept no position.
    """
    if written in node.lc.data:
        return node.lc.key(written) if at_key else node.lc.value(written)  # type: ignore[no-any-return]
    for entry in getattr(node, "merge", ()):
        merged = entry[-1] if isinstance(entry, tuple) else entry  # (index, map) before 0.19
        if written in merged and hasattr(merged, "lc"):
            return _key_position(merged, written, at_key)
    return _start(node)


def _start(tree: Any) -> tuple[int, int]:
    lc = getattr(tree, "lc", None)
    if lc is None or lc.line is None:
        return 0, 0
    return int(lc.line), int(lc.col)
