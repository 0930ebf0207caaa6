"""What the journey language reports about a bad file.

The error tree of `engine.dsl` is one exception wide on purpose::

    DslError(Exception)        the only exception engine.dsl raises for bad input
      .problems: tuple[Problem, ...]
          Problem              one mistake: file, line, column, where, message

A YAML syntax error, a schema mistake (missing key, unknown key, bad duration ...) and a graph
mistake (unknown step, unreachable step, loop with no wait ...) are all a `Problem`; a load collects
every problem of a file before raising, so a marketer fixes them in one pass. Bugs in the engine
itself are not wrapped: they surface as ordinary exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in one file.

    ``line`` and ``column`` are 1-based, as editors show them; 0 means "no position known" (a
    journey built in code rather than read from a file). ``where`` is the path in the document,
    e.g. ``steps[3](id=nudge).send.channel`` (0-based indexes, step ids shown to find the step).
    """

    file: str
    line: int
    column: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.where}: {self.message}"


class DslError(Exception):
    """A document is not a valid journey or segment; ``problems`` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
