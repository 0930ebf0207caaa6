"""The error of `engine.importers`: a file that cannot be imported, every problem listed."""

from __future__ import annotations

from collections.abc import Iterable

MAX_LISTED = 20


class ImportProblems(Exception):
    """Nothing was imported; ``problems`` are ``file:line: message`` lines (all of them; the
    message shows the first 20)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        shown = list(self.problems[:MAX_LISTED])
        if len(self.problems) > MAX_LISTED:
            shown.append(f"... and {len(self.problems) - MAX_LISTED} more problems")
        super().__init__("\n".join(shown))
