"""Room on the machine for a large bench: free memory and disk, checked before and during a run.

Before: the run's footprint is estimated from figures per 10,000 waiting runs (measured by
bench.scale on the embedded stack) and compared with what the machine has left above a floor;
too large a run stops before it starts, naming the largest that fits. During: `guarded` reads
MemAvailable and the free disk every few seconds and cancels the work (its ``finally`` blocks
shut the servers down) once either falls under its floor, so an oversized run ends with a
message instead of swapping or filling the disk. Linux only (``/proc``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

MiB = 1024 * 1024
GiB = 1024 * MiB
MEMORY_FLOOR = 512 * MiB
"""Stop when less memory than this (or a twentieth of the machine's) is left: the servers, the
workers and the rest of the machine need headroom to shut down cleanly."""
DISK_FLOOR = 1 * GiB
"""Stop when less disk than this is free where the bench writes."""

T = TypeVar("T")


class OutOfRoom(RuntimeError):
    """The machine cannot hold the run; the message says what ran low and what to do."""


@dataclass(frozen=True)
class Footprint:
    """Bytes one run costs: fixed (empty stack and workers) plus so much per 10,000 waiting runs."""

    memory_fixed: int
    memory_per_10k: int
    disk_fixed: int
    disk_per_10k: int

    def memory(self, runs: int) -> int:
        return self.memory_fixed + self.memory_per_10k * runs // 10_000

    def disk(self, runs: int) -> int:
        return self.disk_fixed + self.disk_per_10k * runs // 10_000

    def largest(self, memory: int, disk: int) -> int:
        """The most waiting runs that fit in ``memory`` and ``disk`` bytes."""
        fits = [
            (room - fixed) * 10_000 // per
            for room, fixed, per in (
                (memory, self.memory_fixed, self.memory_per_10k),
                (disk, self.disk_fixed, self.disk_per_10k),
            )
            if per > 0
        ]
        return max(0, min(fits, default=0))


@dataclass(frozen=True)
class Machine:
    """What is left: available memory, its floor, free disk where the bench writes."""

    memory_available: int
    memory_floor: int
    disk_free: int

    @classmethod
    def read(cls, folder: Path) -> Machine:
        info = _meminfo()
        floor = max(MEMORY_FLOOR, info["MemTotal"] // 20)
        return cls(info["MemAvailable"], floor, shutil.disk_usage(folder).free)

    def low(self) -> str | None:
        """What ran under its floor, if anything."""
        if self.memory_available < self.memory_floor:
            return (
                f"memory is running low ({self.memory_available / GiB:.1f} GiB available, "
                f"floor {self.memory_floor / GiB:.1f} GiB)"
            )
        if self.disk_free < DISK_FLOOR:
            return f"disk is running low ({self.disk_free / GiB:.1f} GiB free, floor 1 GiB)"
        return None


def too_large(
    people: int, runs_per_person: float, footprint: Footprint, machine: Machine
) -> str | None:
    """Why ``people`` (``runs_per_person`` waiting runs each, baselines included) would not fit
    on ``machine``; None when they would."""
    runs = round(people * runs_per_person)
    memory = machine.memory_available - machine.memory_floor
    disk = machine.disk_free - DISK_FLOOR
    need_memory, need_disk = footprint.memory(runs), footprint.disk(runs)
    if need_memory <= memory and need_disk <= disk:
        return None
    short = []
    if need_memory > memory:
        short.append(f"about {need_memory / GiB:.1f} GiB of memory ({memory / GiB:.1f} left)")
    if need_disk > disk:
        short.append(f"about {need_disk / GiB:.1f} GiB of disk ({disk / GiB:.1f} free)")
    fits = int(footprint.largest(memory, disk) / runs_per_person)
    return (
        f"{people:,} people ({runs:,} waiting runs) need {' and '.join(short)}; "
        f"this machine holds about {fits:,} people"
    )


async def guarded(
    work: Coroutine[Any, Any, T],
    folder: Path,
    every: float = 2.0,
    low: Callable[[Path], str | None] = lambda folder: Machine.read(folder).low(),
) -> T:
    """Run ``work`` while memory and the disk of ``folder`` stay above their floors (``low``
    says what ran under its floor); else cancel it (its clean-up runs) and raise OutOfRoom."""
    task = asyncio.ensure_future(work)
    while not task.done():
        problem = low(folder)
        if problem is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise OutOfRoom(f"stopped: {problem}; the servers were shut down")
        await asyncio.wait({task}, timeout=every)
    return task.result()


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def children(pid: int | None = None) -> dict[int, str]:
    """The processes ``pid`` (default: this one) started: pid -> command line."""
    parent = os.getpid() if pid is None else pid
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The parent is the field after the command name, which may hold spaces.
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                raw = (entry / "cmdline").read_bytes()
                found[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace")
    return found


def size_of(paths: Iterable[Path]) -> int:
    """Bytes on disk of SQLite databases, with their ``-wal`` and ``-shm`` files."""
    total = 0
    for path in paths:
        for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            with contextlib.suppress(OSError):
                total += part.stat().st_size
    return total


def _meminfo() -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0]) * 1024
    return fields
