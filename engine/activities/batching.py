"""`Coalescer`: concurrent callers' requests, served by one batched call.

Many send activities run at once in a worker; each wants a read before it sends and a write after.
A coalescer hands every request waiting at that moment to one call of a batch function, and the
requests that arrive while that call runs to the next one: group commit with no added delay. An
idle worker sends batches of one; under load the batch grows with the load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request", bound=Hashable)
Answer = TypeVar("Answer")

BatchCall = Callable[[Sequence[Request]], Awaitable[Sequence[Answer]]]


class Coalescer(Generic[Request, Answer]):
    """``await coalescer(request)`` is ``(await batch([request]))[0]``, served in batches.

    ``batch`` answers a list of requests with a list of answers in the same order. If it raises,
    each request of the batch is tried again alone, so only the callers whose own request fails
    get an exception (and retry as they would have alone).
    ``limit`` caps one batch; requests beyond it wait for the next.
    """

    def __init__(self, batch: BatchCall[Request, Answer], *, limit: int = 500) -> None:
        self._batch = batch
        self._limit = limit
        self._waiting: list[tuple[Request, asyncio.Future[Answer]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, request: Request) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        # Shielded: a cancelled caller stops waiting, but its request still runs with its batch.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        # Let the callers that are ready in this turn of the loop join the first batch.
        await asyncio.sleep(0)
        while self._waiting:
            taken, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
            try:
                self._settle(taken, await self._batch([request for request, _ in taken]))
            except Exception as exc:  # handed to the callers below, none swallowed
                if len(taken) == 1:
                    _fail(taken[0][1], exc)
                    continue
                # One bad request must not fail its neighbours: each goes again on its own.
                for one in taken:
                    try:
                        self._settle([one], await self._batch([one[0]]))
                    except Exception as alone:
                        _fail(one[1], alone)

    @staticmethod
    def _settle(
        taken: list[tuple[Request, asyncio.Future[Answer]]], answers: Sequence[Answer]
    ) -> None:
        if len(answers) != len(taken):
            raise RuntimeError(f"batch answered {len(answers)} of {len(taken)} requests")
        for (_, future), answer in zip(taken, answers, strict=True):
            if not future.done():
                future.set_result(answer)


def _fail(future: asyncio.Future[Answer], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
