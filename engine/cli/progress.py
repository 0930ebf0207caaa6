"""A terminal view for a long command: one progress bar per phase, lines printed above them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Phases:
    """`engine.demo.run.Progress` on a rich `Progress`: each phase a bar of its own."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        task = self._progress.add_task(description, total=total)
        yield lambda n: self._progress.advance(task, n)

    def finish(self) -> None:
        """The bars stay as they are; what is printed next comes below them."""
        self._progress.stop()


@contextmanager
def live_progress() -> Iterator[tuple[Callable[[str], None], Phases]]:
    """``(say, phases)``: ``say`` prints a line above the bars, which stay when it ends."""
    console = Console(highlight=False)
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )

    def say(line: str) -> None:
        console.print(line, markup=False, soft_wrap=True)

    with progress:
        yield say, Phases(progress)
