"""Workflow modules compiled once per worker process, however many runs import them.

The workflow sandbox imports a workflow's module afresh for every new run, so that module state
never leaks from one run into the next. Python loads that module from its bytecode in
``__pycache__``; where there is none (a checkout run with ``PYTHONDONTWRITEBYTECODE`` set, a
read-only install), it compiles the source again for every run: for the journey interpreter
about 7 ms of CPU per run, more than all its activations together (``python -m bench.runtime``).

While the sandbox imports, `install`'s finder gives Python a loader that keeps the code object
compiled from each source file and hands it out again for the same source; a changed file
compiles anew. Every run still executes the module in a namespace of its own, so the sandbox's
isolation is unchanged; outside the sandbox the finder finds nothing and imports are untouched.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, SourceFileLoader
from types import CodeType, ModuleType
from typing import Any

from temporalio import workflow

_compiled: dict[str, tuple[bytes, CodeType]] = {}
"""Source path -> (the source, its code object): one entry per module the sandbox imports."""
_compilations: dict[str, int] = {}
_installing = threading.Lock()


class _KeptCodeLoader(SourceFileLoader):
    """A source file loader that compiles a given source only once."""

    def source_to_code(  # type: ignore[override]
        self, data: bytes, path: str, *, _optimize: int = -1
    ) -> CodeType:
        kept = _compiled.get(path)
        if kept is not None and kept[0] == data:
            return kept[1]
        # Two threads may both compile a new source; either result is the same code.
        code: CodeType = super().source_to_code(data, path, _optimize=_optimize)
        _compiled[path] = (bytes(data), code)
        _compilations[path] = _compilations.get(path, 0) + 1
        return code


class _SandboxFinder(MetaPathFinder):
    """Finds what the other finders find; inside the sandbox, with the code-keeping loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not workflow.unsafe.in_sandbox():
            return None
        spec = _find_elsewhere(self, fullname, path, target)
        if spec is not None and type(spec.loader) is SourceFileLoader:
            spec.loader = _KeptCodeLoader(spec.loader.name, spec.loader.path)
        return spec


def _find_elsewhere(
    skip: object, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    """The spec the import system would find without ``skip``, asking its finders in order."""
    for finder in sys.meta_path:
        find: Any = getattr(finder, "find_spec", None)
        if finder is skip or find is None:
            continue
        spec: ModuleSpec | None = find(fullname, path, target)
        if spec is not None:
            return spec
    return None


_FINDER = _SandboxFinder()


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once per process; idempotent)."""
    with _installing:
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def compilations(path: str) -> int:
    """How many times the sandbox's imports compiled the source file at ``path``."""
    return _compilations.get(path, 0)
