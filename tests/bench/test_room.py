"""The scale bench's guard: a run too large for the machine stops before it starts, and one
that runs it low stops with its clean-up done."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.room import Footprint, GiB, Machine, MiB, OutOfRoom, guarded, too_large

FOOTPRINT = Footprint(
    memory_fixed=600 * MiB, memory_per_10k=400 * MiB, disk_fixed=100 * MiB, disk_per_10k=1 * GiB
)


def test_a_run_that_fits_is_let_through() -> None:
    machine = Machine(memory_available=20 * GiB, memory_floor=1 * GiB, disk_free=50 * GiB)

    assert too_large(100_000, 1.0, FOOTPRINT, machine) is None


def test_a_run_too_large_for_memory_names_what_it_needs_and_what_fits() -> None:
    machine = Machine(memory_available=4 * GiB, memory_floor=1 * GiB, disk_free=50 * GiB)

    problem = too_large(100_000, 1.0, FOOTPRINT, machine)

    # 600 MiB + 10 x 400 MiB = 4.5 GiB against 3 GiB above the floor; (3,072 - 600) MiB left
    # for runs at 400 MiB per 10,000 hold 61,800.
    assert problem == (
        "100,000 people (100,000 waiting runs) need about 4.5 GiB of memory (3.0 left); "
        "this machine holds about 61,800 people"
    )


def test_a_run_too_large_for_the_disk_says_so() -> None:
    machine = Machine(memory_available=20 * GiB, memory_floor=1 * GiB, disk_free=5 * GiB)

    problem = too_large(100_000, 1.0, FOOTPRINT, machine)

    assert problem is not None
    assert "about 10.1 GiB of disk (4.0 free)" in problem
    assert "memory" not in problem
    assert "holds about 39,023 people" in problem


def test_the_people_that_fit_count_every_waiting_run_they_bring() -> None:
    machine = Machine(memory_available=4 * GiB, memory_floor=1 * GiB, disk_free=50 * GiB)

    problem = too_large(100_000, 1.4, FOOTPRINT, machine)

    assert problem is not None
    assert problem.startswith("100,000 people (140,000 waiting runs) need about 6.1 GiB")
    assert problem.endswith("this machine holds about 44,142 people")


def test_low_memory_or_disk_is_named() -> None:
    assert Machine(8 * GiB, 1 * GiB, 50 * GiB).low() is None
    assert "memory is running low (0.5 GiB available" in (
        Machine(GiB // 2, 1 * GiB, 50 * GiB).low() or ""
    )
    assert "disk is running low (0.5 GiB free" in (Machine(8 * GiB, 1 * GiB, GiB // 2).low() or "")


async def test_work_that_runs_the_machine_low_is_stopped_after_its_clean_up(
    tmp_path: Path,
) -> None:
    cleaned = asyncio.Event()
    checks = iter([None, None, "memory is running low (0.4 GiB available, floor 1.0 GiB)"])

    async def work() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()  # where the bench shuts its servers down

    with pytest.raises(OutOfRoom) as raised:
        await guarded(work(), tmp_path, every=0.01, low=lambda folder: next(checks))

    assert cleaned.is_set()
    assert str(raised.value) == (
        "stopped: memory is running low (0.4 GiB available, floor 1.0 GiB); "
        "the servers were shut down"
    )


async def test_work_with_room_returns_its_result(tmp_path: Path) -> None:
    async def work() -> int:
        await asyncio.sleep(0.02)
        return 7

    assert await guarded(work(), tmp_path, every=0.01) == 7
