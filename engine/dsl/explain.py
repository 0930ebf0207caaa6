"""Pydantic validation errors as problems a marketer can act on, at the right line and column.

Pydantic reports a location such as ``("steps", 0, "wait", "wait", "duration")``: document keys
mixed with the labels of the union members it tried (``"wait"`` the step kind, ``"duration"`` the
wait form). Labels can equal document keys (a condition's tag is ``attribute``, and so is its
key), so the location is walked against the model types and the YAML tree together: at a union
the part is a label, anywhere else it is a key or an index.

One mistake gives one problem: a misspelled key is "unknown key 'wiat', did you mean 'wait'?"
rather than that plus "missing key 'wait'", and the several type errors of one union value merge
into one "expected a number or text, got [1]".
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from engine.dsl.base import SLUG_PATTERN
from engine.dsl.conditions import COMPARISONS
from engine.dsl.errors import Problem
from engine.dsl.models import STEP_KINDS
from engine.dsl.source import DocPath, PathPart, SourceMap, child, has


@dataclass(frozen=True)
class _KindRule:
    """A union chosen by which key is present (step kind, condition, entry, branch case)."""

    noun: str
    kinds: tuple[str, ...]
    also_allowed: tuple[str, ...]

    def expected(self) -> str:
        return f"{self.noun} has one of the keys {', '.join(self.kinds)}"


_KIND_RULES = {
    "step_kind": _KindRule("a step", STEP_KINDS, ("id", "next")),
    "condition_kind": _KindRule(
        "a condition", ("attribute", "tag", "all", "any", "not"), COMPARISONS
    ),
    "entry_kind": _KindRule("an entry", ("segment", "event", "api"), ("schedule",)),
    "case_kind": _KindRule("a branch case", ("when", "else"), ("goto",)),
}

_EXPECTED = re.compile(r"^expected (?P<what>.+), got (?P<got>.+)$", re.DOTALL)
_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true/false",
    "bool_parsing": "true/false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def explain(error: ValidationError, source: SourceMap, model: type[BaseModel]) -> list[Problem]:
    """Every error of ``error`` (raised validating ``source.data`` as ``model``), located.

    The result has one problem per mistake, in document order.
    """
    found = [_locate(detail, source, model) for detail in error.errors(include_url=False)]
    found = _drop_missing_explained_by_unknown(found)
    return sorted(_merge(found, source), key=lambda p: (p.line, p.column, p.where))


def show(value: Any) -> str:
    """A value as it would be written in YAML, shortened: '1x', 5, [1, 2], {until: '25:00'}."""
    text = _show(value)
    return text if len(text) <= 60 else text[:57] + "..."


def close_match(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` was probably meant to be (a typo), or None.

    A typo is a few edits away (a swapped pair counts as one): one for short words, two from
    eight letters. Similarity ratios would also pair unrelated short words such as next / exit.
    """
    allowed = 1 if len(word) < 8 else 2
    best = min(choices, key=lambda c: _edits(word, c), default=None)
    return best if best is not None and _edits(word, best) <= allowed else None


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, changes and adjacent swaps."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


@dataclass
class _Found:
    path: DocPath
    message: str
    at_key: bool = False
    missing_key: str | None = None
    unknown_key: str | None = None
    suggestion: str | None = None
    expected: str = ""


@dataclass(frozen=True)
class _Resolved:
    path: DocPath
    absent: PathPart | None  # the first part of the location not in the document
    parent_model: Any  # the type of the mapping holding the last part of ``path``


def _locate(detail: ErrorDetails, source: SourceMap, model: type[BaseModel]) -> _Found:
    resolved = _resolve(model, source.tree, detail["loc"])
    kind = detail["type"]
    node = _value(source, resolved.path)
    if kind == "missing" and isinstance(resolved.absent, str):
        return _Found(
            resolved.path, f"missing key '{resolved.absent}'", missing_key=resolved.absent
        )
    if kind == "missing":
        return _Found(resolved.path, "expected more items here")
    if kind == "extra_forbidden" and resolved.path and isinstance(resolved.path[-1], str):
        key = resolved.path[-1]
        allowed = _keys(resolved.parent_model)
        mapping = _value(source, resolved.path[:-1])
        # A key already written is not what this one was meant to be.
        unused = [k for k in allowed if not (isinstance(mapping, dict) and k in mapping)]
        expected = f"expected one of: {', '.join(allowed)}" if allowed else ""
        return _unknown_key(resolved.path, key, unused, expected)
    if kind in _KIND_RULES:
        return _wrong_kind(resolved.path, node, _KIND_RULES[kind])
    if kind == "wait_kind":
        return _Found(resolved.path, f"{detail['msg']}, got {show(node)}")
    return _Found(resolved.path, _message(detail))


def _unknown_key(
    path: DocPath, key: str, allowed: Sequence[str], expected: str, meant: str | None = None
) -> _Found:
    suggestion = meant or close_match(key, allowed)
    hint = f", did you mean '{suggestion}'?" if suggestion else ""
    tail = f" ({expected})" if expected else ""
    return _Found(
        path,
        f"unknown key '{key}'{hint}{tail}",
        at_key=True,
        unknown_key=key,
        suggestion=suggestion,
        expected=expected,
    )


def _wrong_kind(path: DocPath, node: Any, rule: _KindRule) -> _Found:
    if not isinstance(node, dict):
        return _Found(
            path,
            f"expected {rule.noun}: a mapping with one of the keys "
            f"{', '.join(rule.kinds)}, got {show(node)}",
        )
    present = [k for k in node if k in rule.kinds]
    if len(present) > 1:
        return _Found(
            (*path, present[1]),
            f"{rule.noun} has exactly one of the keys {', '.join(rule.kinds)}; "
            f"this one has {' and '.join(repr(k) for k in present)}",
            at_key=True,
        )
    known = set(rule.kinds) | set(rule.also_allowed)
    unknown = [k for k in node if isinstance(k, str) and k not in known]
    if unknown:
        # Prefer the key that looks like a misspelled kind: that is the mistake to fix.
        key = next((k for k in unknown if close_match(k, rule.kinds)), unknown[0])
        return _unknown_key((*path, key), key, rule.kinds, rule.expected())
    return _Found(path, f"{rule.noun} needs one of the keys {', '.join(rule.kinds)}")


def _message(detail: ErrorDetails) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    got = show(detail["input"])
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        message = str(ctx["error"])
        # Validators quote the input with repr(); say it the YAML way ("got nothing", not None).
        python = f"got {detail['input']!r}"
        return message[: -len(python)] + f"got {got}" if message.endswith(python) else message
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == SLUG_PATTERN:
            return (
                "expected an id of lower-case letters, digits, '-' and '_' "
                f"(such as cart_a), got {got}"
            )
        return f"expected a name of letters, digits, '_' and '.' (such as cart_value), got {got}"
    if kind == "literal_error":
        # pydantic spells the choices in Python (True); YAML says true.
        expected = str(ctx.get("expected")).replace("True", "true").replace("False", "false")
        return f"expected {expected}, got {got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"expected {words} {_show(ctx.get(key))}, got {got}"
    # Not expected from this language's models; pydantic's own words beat losing the problem.
    return str(detail["msg"])


def _drop_missing_explained_by_unknown(found: list[_Found]) -> list[_Found]:
    """``tempalte: x`` is one mistake: keep "unknown key ... did you mean 'template'?" only.

    When a mapping lacks exactly one key and has exactly one unknown key, they are taken to be
    the same key however different they look (``till`` for ``until``).
    """
    missing: dict[DocPath, list[_Found]] = {}
    unknown: dict[DocPath, list[_Found]] = {}
    for f in found:
        if f.missing_key:
            missing.setdefault(f.path, []).append(f)
        if f.unknown_key:
            unknown.setdefault(f.path[:-1], []).append(f)
    result = []
    for f in found:
        if f.unknown_key and not f.suggestion:
            lacking = missing.get(f.path[:-1], [])
            if len(lacking) == 1 and len(unknown[f.path[:-1]]) == 1:
                meant = lacking[0].missing_key
                f = _unknown_key(f.path, f.unknown_key, [], f.expected, meant)
                unknown[f.path[:-1]] = [f]
        result.append(f)
    explained = {(f.path[:-1], f.suggestion) for f in result if f.unknown_key and f.suggestion}
    return [f for f in result if not (f.missing_key and (f.path, f.missing_key) in explained)]


def _merge(found: list[_Found], source: SourceMap) -> list[Problem]:
    """One problem per place: the members of a union each complain about the same value."""
    # Each missing key is a mistake of its own, though all are reported at their mapping.
    groups: dict[tuple[DocPath, bool, str | None], list[str]] = {}
    for f in found:
        messages = groups.setdefault((f.path, f.at_key, f.missing_key), [])
        if f.message not in messages:
            messages.append(f.message)
    problems = []
    for (path, at_key, _), messages in groups.items():
        problems.append(source.problem(path, _combine(messages), key=at_key))
    return problems


def _combine(messages: list[str]) -> str:
    if len(messages) == 1:
        return messages[0]
    matches = [_EXPECTED.match(m) for m in messages]
    if all(matches) and len({m["got"] for m in matches if m}) == 1:
        whats = [m["what"] for m in matches if m]
        if "a number" in whats and "a whole number" in whats:
            whats.remove("a whole number")
        head = ", ".join(whats[:-1]) + " or " + whats[-1] if len(whats) > 1 else whats[0]
        got = matches[0]["got"] if matches[0] else ""
        return f"expected {head}, got {got}"
    return "; ".join(messages)


def _resolve(model: type[BaseModel], tree: Any, loc: Sequence[PathPart]) -> _Resolved:
    tp: Any = model
    parent: Any = None
    node = tree
    path: list[PathPart] = []
    parts = list(loc)
    index = 0
    while index < len(parts):
        part = parts[index]
        tp = _strip(tp)
        members = _union_members(tp)
        if members is not None and len(members) == 1:
            tp = members[0]
            continue
        if members is not None or (tp is Any and not has(node, part)):
            # A union member's label, not a place in the document.
            tp = _member(members or [], part)
            index += 1
            continue
        if not has(node, part):
            return _Resolved(tuple(path), part, parent)
        parent = tp
        node = child(node, part)
        path.append(part)
        tp = _element(tp, part)
        index += 1
    return _Resolved(tuple(path), None, parent)


def _value(source: SourceMap, path: DocPath) -> Any:
    """The plain value at ``path`` (what was validated), None when absent."""
    value = source.data
    for part in path:
        try:
            value = child(value, part)
        except KeyError:
            return None
    return value


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> list[Any] | None:
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    return [m for m in typing.get_args(tp) if m is not type(None)]


def _member(members: list[Any], label: PathPart) -> Any:
    for member in members:
        tags = [m.tag for m in getattr(member, "__metadata__", ()) if isinstance(m, Tag)]
        inner = _strip(member)
        if label in tags or getattr(inner, "__name__", None) == label:
            return member
    return Any


def _element(tp: Any, part: PathPart) -> Any:
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return Any
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, set, frozenset) and args:
        return args[0]
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[part] if isinstance(part, int) and part < len(args) else Any
    if origin is dict and len(args) == 2:
        return args[1]
    return Any


def _keys(tp: Any) -> list[str]:
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [info.alias or name for name, info in tp.model_fields.items()]
    return []


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a bound of a float field reads "100", not "100.0"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
