"""`Coalescer`: concurrent requests share one batch call; a bad request fails only itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from engine.activities.batching import Coalescer


class Recorder:
    """A batch function that doubles numbers, remembers each batch, refuses negatives."""

    def __init__(self, pause: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.pause = pause

    async def __call__(self, requests: Sequence[int]) -> list[int]:
        self.batches.append(list(requests))
        await asyncio.sleep(self.pause)
        if any(r < 0 for r in requests):
            raise ValueError(f"negative among {sorted(requests)}")
        return [r * 2 for r in requests]


async def test_callers_waiting_together_share_a_batch_and_get_their_own_answer() -> None:
    batch = Recorder(pause=0.01)
    double = Coalescer(batch)

    answers = await asyncio.gather(*(double(i) for i in range(100)))

    assert answers == [i * 2 for i in range(100)]
    # The first caller's batch runs while the rest arrive; they all go in the next one.
    assert sum(len(b) for b in batch.batches) == 100
    assert len(batch.batches) <= 2


async def test_a_lone_caller_is_served_at_once() -> None:
    batch = Recorder()
    double = Coalescer(batch)
    assert await double(3) == 6
    assert await double(4) == 8
    assert batch.batches == [[3], [4]]


async def test_a_failing_request_fails_only_its_own_caller() -> None:
    batch = Recorder()
    double = Coalescer(batch)

    results = await asyncio.gather(double(1), double(-1), double(2), return_exceptions=True)

    assert results[0] == 2 and results[2] == 4
    assert isinstance(results[1], ValueError) and str(results[1]) == "negative among [-1]"


async def test_the_limit_splits_batches() -> None:
    batch = Recorder()
    double = Coalescer(batch, limit=3)
    assert await asyncio.gather(*(double(i) for i in range(7))) == [i * 2 for i in range(7)]
    assert [len(b) for b in batch.batches] == [3, 3, 1]


async def test_a_cancelled_caller_does_not_cancel_its_batch() -> None:
    batch = Recorder(pause=0.05)
    double = Coalescer(batch)
    first = asyncio.create_task(double(1))
    second = asyncio.create_task(double(2))
    await asyncio.sleep(0.01)
    first.cancel()

    assert await second == 4
    with pytest.raises(asyncio.CancelledError):
        await first
    assert batch.batches == [[1, 2]]


async def test_a_wrong_number_of_answers_is_an_error_for_each_caller() -> None:
    async def short(requests: Sequence[int]) -> list[int]:
        return []

    missing = Coalescer(short)
    with pytest.raises(RuntimeError, match="batch answered 0 of 1 requests"):
        await missing(1)
