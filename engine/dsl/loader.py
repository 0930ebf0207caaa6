"""Reading journey and segment files: YAML -> validated models, or every problem, located.

    journey = load_journey("journeys/cart_recovery.yaml")      # raises DslError
    problems = validate_paths([Path("journeys")])               # never raises for bad input

A file is read with positions kept (`engine.dsl.source`), validated by the pydantic models, and a
journey's step graph is checked (`engine.dsl.graph`); every problem of the file is reported at
once, each as ``file:line:column: where: message``. Which model a file is validated against is
decided by `KINDS`: that table is where the contact policy and member tiers files will be added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from engine.dsl.errors import DslError, Problem
from engine.dsl.explain import explain
from engine.dsl.graph import check_steps
from engine.dsl.models import AUTHORING, Journey, Step
from engine.dsl.policy import Policy
from engine.dsl.segments import Segment
from engine.dsl.source import TOP, SourceMap, read_yaml
from engine.dsl.tiers import Tiers

Document = Journey | Segment | Policy | Tiers

SUFFIXES = (".yaml", ".yml")
TEMPLATES = "templates"
"""The folder of message templates: YAML too, but read by `engine.templates`, not here."""
_SKIPPED_FOLDERS = (TEMPLATES,)


@dataclass(frozen=True)
class Kind:
    """One kind of file: how to recognise it, its model, and checks beyond the model.

    ``recognise(path, data)`` sees the file's path and its top-level YAML data (any type).
    ``check(source, error)`` returns problems the schema cannot express; ``error`` is the
    validation error of the file, if any, so a check can work on what did validate.
    """

    name: str
    plural: str
    model: type[BaseModel]
    recognise: Callable[[Path, Any], bool]
    check: Callable[[SourceMap, ValidationError | None], list[Problem]]


def _is_segment(path: Path, data: Any) -> bool:
    if path.parent.name == "segments":
        return True
    return isinstance(data, dict) and "condition" in data and "steps" not in data


def _is_journey(path: Path, data: Any) -> bool:
    return isinstance(data, dict) and "steps" in data


def _is_policy(path: Path, data: Any) -> bool:
    return path.stem == "policy" and not (isinstance(data, dict) and "steps" in data)


def _is_tiers(path: Path, data: Any) -> bool:
    return path.stem == "tiers" and not (isinstance(data, dict) and "steps" in data)


def _no_checks(source: SourceMap, error: ValidationError | None) -> list[Problem]:
    return []


_STEP = TypeAdapter[Step](Step)


def _journey_graph(source: SourceMap, error: ValidationError | None) -> list[Problem]:
    data = source.data
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        return []
    broken: set[int] = set()
    for detail in error.errors() if error else ():
        loc = detail["loc"]
        if loc[:1] == ("steps",):
            if len(loc) == 1:
                return []  # the list itself is wrong (e.g. empty): no graph to check
            if isinstance(loc[1], int):
                broken.add(loc[1])
    steps: list[Step | None] = []
    for index, raw in enumerate(data["steps"]):
        if index in broken:
            steps.append(None)
            continue
        try:
            steps.append(_STEP.validate_python(raw))
        except ValidationError:
            steps.append(None)
    return check_steps(steps, source)


# Recognised in this order; the first whose `recognise` says yes wins. The segment folder rule
# comes first so that a segment file with a stray `steps:` is still checked as a segment.
KINDS: tuple[Kind, ...] = (
    Kind("policy", "policies", Policy, _is_policy, _no_checks),
    Kind("tiers", "tier files", Tiers, _is_tiers, _no_checks),
    Kind("segment", "segments", Segment, _is_segment, _no_checks),
    Kind("journey", "journeys", Journey, _is_journey, _journey_graph),
)
_JOURNEY = next(k for k in KINDS if k.name == "journey")
_SEGMENT = next(k for k in KINDS if k.name == "segment")
_POLICY = next(k for k in KINDS if k.name == "policy")
_TIERS = next(k for k in KINDS if k.name == "tiers")
UNRECOGNISED = (
    "unrecognised file: expected a journey (steps:), a segment (condition:) or the contact "
    "policy (policy.yaml)"
)


@dataclass(frozen=True)
class Checked:
    """The outcome for one file: its kind (None if unrecognised), the model if valid, problems."""

    path: Path
    kind: Kind | None
    document: Document | None
    problems: tuple[Problem, ...]


def load_journey(path: Path | str) -> Journey:
    """Read and validate a journey file, including its step graph.

    Raises DslError with every problem (YAML syntax, schema, graph), each with its position.
    """
    document = _load(Path(path), _JOURNEY)
    assert isinstance(document, Journey)
    return document


def load_segment(path: Path | str) -> Segment:
    """Read and validate a segment file. Raises DslError with every problem, located."""
    document = _load(Path(path), _SEGMENT)
    assert isinstance(document, Segment)
    return document


def load_policy(path: Path | str) -> Policy:
    """Read and validate the contact policy. Raises DslError with every problem, located."""
    document = _load(Path(path), _POLICY)
    assert isinstance(document, Policy)
    return document


def load_tiers(path: Path | str) -> Tiers:
    """Read and validate the member tiers file. Raises DslError with every problem, located."""
    document = _load(Path(path), _TIERS)
    assert isinstance(document, Tiers)
    return document


def load_document(path: Path | str) -> Document:
    """Read a journey or a segment, recognised by `KINDS`. Raises DslError, located."""
    return _load(Path(path), None)


def parse_journey_text(text: str, filename: str = "<string>") -> Journey:
    """Validate journey YAML given as text; ``filename`` is what problems name as the file."""
    document = _parse(text, filename, Path(filename), _JOURNEY)
    assert isinstance(document, Journey)
    return document


def check_paths(paths: Iterable[Path | str]) -> list[Checked]:
    """Check every file; a directory stands for its *.yaml / *.yml files, recursively.

    A missing path or an unreadable file is a problem of its own; nothing raises for bad input.
    Message templates (``templates/`` folders) are skipped: they are checked at deploy.
    """
    results = []
    for given in paths:
        found = _expand(Path(given))
        if not found:
            # Most likely a mistyped folder; "ok" would hide that nothing was checked.
            empty = Problem(str(given), 0, 0, TOP, "no .yaml or .yml files in this folder")
            results.append(Checked(Path(given), None, None, (empty,)))
        for path in found:
            try:
                text = _read(path)
                source = read_yaml(text, str(path))
                kind = _recognise(path, source)
                document = _validate(source, kind)
            except DslError as exc:
                results.append(Checked(path, _kind_or_none(path), None, exc.problems))
                continue
            results.append(Checked(path, kind, document, ()))
    return results


def validate_paths(paths: Iterable[Path | str]) -> list[Problem]:
    """Every problem of every file under ``paths`` (see `check_paths`); empty when all is well."""
    return [problem for checked in check_paths(paths) for problem in checked.problems]


def _load(path: Path, kind: Kind | None) -> Document:
    return _parse(_read(path), str(path), path, kind)


def _parse(text: str, file: str, path: Path, kind: Kind | None) -> Document:
    source = read_yaml(text, file)
    return _validate(source, kind or _recognise(path, source))


def _validate(source: SourceMap, kind: Kind) -> Document:
    try:
        # by_name=False: a file spells keys as the schema does (`else`, not the Python `else_`).
        document = kind.model.model_validate(source.data, context=AUTHORING, by_name=False)
    except ValidationError as exc:
        found = explain(exc, source, kind.model) + kind.check(source, exc)
        raise DslError(sorted(found, key=lambda p: (p.line, p.column))) from None
    problems = kind.check(source, None)
    if problems:
        raise DslError(problems)
    assert isinstance(document, Journey | Segment | Policy | Tiers)
    return document


def _recognise(path: Path, source: SourceMap) -> Kind:
    for kind in KINDS:
        if kind.recognise(path, source.data):
            return kind
    raise DslError([source.problem((), UNRECOGNISED)])


def _kind_or_none(path: Path) -> Kind | None:
    # Only to count files in a summary; a file that failed to parse has no data to look at.
    return next((k for k in KINDS if k.recognise(path, None)), None)


def _read(path: Path) -> str:
    def problem(message: str) -> DslError:
        return DslError([Problem(str(path), 0, 0, TOP, message)])

    if path.is_dir():
        raise problem("is a directory, expected a YAML file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise problem("no such file") from None
    except UnicodeDecodeError as exc:
        raise problem(f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise problem(f"cannot read: {exc.strerror}") from None


def _expand(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    return sorted(
        found
        for found in path.rglob("*")
        if found.suffix in SUFFIXES
        and found.is_file()
        and not any(part in _SKIPPED_FOLDERS for part in found.relative_to(path).parts[:-1])
    )
