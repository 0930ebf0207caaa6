"""A load worker for the concurrency test: one process, its own event loop and Redis connections.

`decide_share` runs in a child process (spawned, so nothing of the parent's loop leaks in): it
builds its own `RedisCapService` and asks for every request of its share through ``tasks``
asyncio tasks at once, and returns each answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import redis.asyncio as aioredis

from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.dsl.models import Cap
from engine.dsl.policy import Policy
from tests.caps.model import from_ms


@dataclass(frozen=True)
class Job:
    send_key: str
    profile_id: str
    journey_id: str
    channel: str
    tags: tuple[str, ...]
    journey_caps: tuple[tuple[int, timedelta], ...]
    at: int
    timezone: str

    def request(self) -> CapRequest:
        return CapRequest(
            send_key=self.send_key,
            profile_id=self.profile_id,
            journey_id=self.journey_id,
            channel=self.channel,
            priority=50,
            at=from_ms(self.at),
            timezone=self.timezone,
            journey_caps=tuple(Cap(max=m, per=p) for m, p in self.journey_caps),
            tags=self.tags,
        )


@dataclass(frozen=True)
class Outcome:
    send_key: str
    profile_id: str
    allowed: bool
    rule: str | None


def decide_share(
    url: str,
    policy: dict[str, Any],
    jobs: list[Job],
    tasks: int,
    start: Barrier,
    results: Queue[list[Outcome]],
) -> None:
    """Entry point of a worker process: wait for the others at ``start``, then decide."""
    start.wait(timeout=60)
    results.put(asyncio.run(_decide(url, policy, jobs, tasks)))


async def _decide(url: str, policy: dict[str, Any], jobs: list[Job], tasks: int) -> list[Outcome]:
    client = aioredis.Redis.from_url(url)
    caps = RedisCapService(client, Policy.model_validate(policy))
    outcomes: list[Outcome] = []

    async def run(mine: list[Job]) -> None:
        for job in mine:
            decision = await caps.reserve(job.request())
            outcomes.append(Outcome(job.send_key, job.profile_id, decision.allowed, decision.rule))

    try:
        await asyncio.gather(*(run(jobs[i::tasks]) for i in range(tasks)))
    finally:
        await client.aclose()
    return outcomes
