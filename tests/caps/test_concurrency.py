"""50 journeys x 1,000 people asking at the same moment, from two processes and many tasks.

Every (journey, person) send arrives at once, shuffled over two worker processes, each with its
own event loop, Redis connections and 64 concurrent tasks; some send keys are asked twice from
different processes (a retried activity racing its first attempt). Afterwards no person's counter
is above its cap and each person was allowed exactly as many sends as the reference model allows.

The caps nest (global over channels, the promo tag inside email, a journey inside its channel),
so however the simultaneous requests interleave, the number a person is allowed is the same: the
model's answer for any one order.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from engine.caps.redis_caps import person_key
from tests.caps.load import Job, Outcome, decide_share
from tests.caps.model import CapModel, Send, to_ms

JOURNEYS = 50
PEOPLE = 1_000
PROCESSES = 2
TASKS = 64
AT = to_ms(datetime(2026, 11, 24, 2, 0, tzinfo=UTC))
DAY, WEEK = timedelta(days=1), timedelta(days=7)
ZONES = ("Asia/Shanghai", "America/New_York", "UTC")

GLOBAL = [(3, DAY), (5, WEEK)]
CHANNEL = {"sms": [(1, DAY)], "email": [(2, DAY)]}
TAG = {"promo": [(1, DAY)]}
JOURNEY = ((1, WEEK),)


def journey(n: int) -> tuple[str, str, tuple[str, ...], int]:
    """id, channel, tags, steps: a third each on sms, email, push; half of email is promo; the
    first ten journeys send twice (two steps), so their own 1-per-week cap bites."""
    channel = ("sms", "email", "push")[n % 3]
    tags = ("promo",) if channel == "email" and n % 2 == 0 else ()
    return f"j{n:02d}", channel, tags, 2 if n < 10 else 1


def policy() -> dict[str, Any]:
    def rules(caps: list[tuple[int, timedelta]]) -> list[dict[str, Any]]:
        return [{"max": m, "per": p} for m, p in caps]

    return {
        "caps": {
            "global": rules(GLOBAL),
            "channels": {c: rules(v) for c, v in CHANNEL.items()},
            "tags": {t: rules(v) for t, v in TAG.items()},
        },
        "on_capped": {"action": "skip"},
    }


def jobs(run: str) -> list[Job]:
    found = []
    for person in range(PEOPLE):
        for n in range(JOURNEYS):
            journey_id, channel, tags, steps = journey(n)
            for step in range(steps):
                found.append(
                    Job(
                        send_key=f"{journey_id}:{person}:{step}",
                        profile_id=f"{run}-{person:04d}",
                        journey_id=journey_id,
                        channel=channel,
                        tags=tags,
                        journey_caps=JOURNEY,
                        at=AT,
                        timezone=ZONES[person % len(ZONES)],
                    )
                )
    return found


def model_counts(order: list[Job]) -> Counter[str]:
    models: dict[str, CapModel] = {}
    allowed: Counter[str] = Counter()
    for job in order:
        model = models.setdefault(
            job.profile_id,
            CapModel(ZoneInfo(job.timezone), False, GLOBAL, CHANNEL, TAG),
        )
        send = Send(job.send_key, job.at, job.channel, job.journey_id, job.tags, JOURNEY)
        allowed[job.profile_id] += model.reserve(send).allowed
    return allowed


def run_workers(url: str, shares: list[list[Job]]) -> list[Outcome]:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(len(shares))
    results: Any = spawn.Queue()
    workers = [
        spawn.Process(target=decide_share, args=(url, policy(), share, TASKS, start, results))
        for share in shares
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [o for _ in workers for o in results.get(timeout=90)]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    assert all(w.exitcode == 0 for w in workers)
    return outcomes


async def test_simultaneous_sends_never_exceed_a_cap_and_match_the_model(
    volatile_redis_url: str,
) -> None:
    run = f"load-{uuid.uuid4().hex[:8]}"
    rng = random.Random(20261124)
    order = jobs(run)
    rng.shuffle(order)
    shares = [order[i::PROCESSES] for i in range(PROCESSES)]
    # A retried activity racing its first attempt in the other process.
    retried = rng.sample(range(len(order)), len(order) // 30)
    for i in retried:
        shares[(i + 1) % PROCESSES].append(order[i])
    for share in shares:
        rng.shuffle(share)

    outcomes = await asyncio.to_thread(run_workers, volatile_redis_url, shares)

    assert len(outcomes) == len(order) + len(retried)
    answers: dict[tuple[str, str], bool] = {}
    for o in outcomes:
        first = answers.setdefault((o.profile_id, o.send_key), o.allowed)
        assert first == o.allowed, f"{o.send_key} of {o.profile_id} got two different answers"
    allowed: Counter[str] = Counter(person for (person, _), ok in answers.items() if ok)

    expected = model_counts(order)
    assert set(expected.values()) == {3}  # the global 3/1d binds everyone
    assert allowed == expected

    people = [f"{run}-{p:04d}" for p in range(PEOPLE)]
    counters = [("g", 3), ("c:sms", 1), ("c:email", 2), ("t:promo", 1)]
    counters += [(f"j:{journey(n)[0]}", 1) for n in range(JOURNEYS)]
    client = aioredis.Redis.from_url(volatile_redis_url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for person in people:
                pipe.zrange(person_key(person, "g"), 0, -1)
                for counter, _ in counters:
                    pipe.zcard(person_key(person, counter))
            replies = await pipe.execute()
    finally:
        await client.aclose()
    granted: dict[str, set[str]] = defaultdict(set)
    for (person, key), ok in answers.items():
        if ok:
            granted[person].add(key)
    width = 1 + len(counters)
    for i, person in enumerate(people):
        members, *sizes = replies[i * width : (i + 1) * width]
        assert {m.decode() for m in members} == granted[person]
        over = [(c, n, cap) for (c, cap), n in zip(counters, sizes, strict=True) if n > cap]
        assert not over, f"{person} is over a cap: {over}"
