"""Checks per second of the cap script against an empty EVALSHA with the same keys and arguments.

A realistic marketing send: two global rules, one channel rule, one tag rule, one journey rule (5
rules over 4 sorted sets, plus the send's decision record, the person's refresh note, merge forward
and counter index: 9 keys, 15 arguments). Every call uses a fresh send key and generous limits, so
every call really checks and reserves; 1,000 people's counters are filled first and keep growing
through the run (20 to 140 entries: mostly listpacks, which ZADD scans). Generous limits also mean
RESERVE's ZCARD shortcut skips every range count; a counter holding as many entries as its limit
costs one ZCOUNT per rule more. The baseline is a script that only returns 1, called with the very
same keys and arguments at the same concurrency, so the ratio is what the check-and-reserve costs
on top of a bare round trip:

- single: ``--tasks`` asyncio tasks, each awaiting one EVALSHA after another;
- pipelined: ``--batch`` EVALSHAs per pipeline, ``--pipelines`` pipelines in flight;
- end to end: `RedisCapService.reserve` (rules, arguments, decoding) at ``--tasks``.

Modes alternate over ``--rounds`` so machine noise hits both; medians are printed. One client
process drives one redis-server (no persistence) on the same machine: a client-bound figure.

    python -m bench.caps [--people 1000] [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from engine.caps import scripts
from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService, person_key
from engine.dsl.models import Cap
from engine.dsl.policy import Policy
from engine.servers import find_binary, free_port, port_taken

EMPTY = "return 1"
VOLATILE = ("--save", "", "--appendonly", "no")
POLICY = Policy.model_validate(
    {
        "timezone": "Asia/Shanghai",
        "caps": {
            "global": [{"max": 1000, "per": "1d"}, {"max": 1000, "per": "7d"}],
            "channels": {"sms": [{"max": 1000, "per": "7d"}]},
            "tags": {"promotion": [{"max": 1000, "per": "7d"}]},
        },
    }
)
JOURNEY_CAPS = (Cap(max=1000, per=timedelta(days=7)),)
START = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

Call = tuple[list[str], list[Any]]


class Sends:
    """Fresh sends, round robin over the people, each a millisecond after the last."""

    def __init__(self, people: int) -> None:
        self._people = people
        self._n = itertools.count()

    def request(self) -> CapRequest:
        n = next(self._n)
        return CapRequest(
            send_key=f"bench-{n}",
            profile_id=f"person-{n % self._people:05d}",
            journey_id="cart-recovery",
            channel="sms",
            priority=50,
            at=START + timedelta(milliseconds=n),
            timezone="Asia/Shanghai",
            journey_caps=JOURNEY_CAPS,
            tags=("promotion",),
        )

    def calls(self, caps: RedisCapService) -> Iterator[Call]:
        while True:
            yield script_call(caps, self.request())


def script_call(caps: RedisCapService, request: CapRequest) -> Call:
    """The keys and arguments `RedisCapService.reserve` sends for ``request`` (its own code)."""
    call = caps.reserve_call(request)
    assert call is not None
    _, keys, args = call
    return keys, args


async def single(
    client: aioredis.Redis, sha: str, calls: Iterator[Call], n: int, tasks: int
) -> float:
    batch = [next(calls) for _ in range(n)]

    async def worker(mine: list[Call]) -> None:
        for keys, args in mine:
            await client.evalsha(sha, len(keys), *keys, *args)

    began = time.perf_counter()
    await asyncio.gather(*(worker(batch[i::tasks]) for i in range(tasks)))
    return n / (time.perf_counter() - began)


async def pipelined(
    client: aioredis.Redis, sha: str, calls: Iterator[Call], n: int, batch: int, pipelines: int
) -> float:
    chunks = [[next(calls) for _ in range(batch)] for _ in range(n // batch)]

    async def worker(mine: list[list[Call]]) -> None:
        for chunk in mine:
            async with client.pipeline(transaction=False) as pipe:
                for keys, args in chunk:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                await pipe.execute()

    began = time.perf_counter()
    await asyncio.gather(*(worker(chunks[i::pipelines]) for i in range(pipelines)))
    return len(chunks) * batch / (time.perf_counter() - began)


async def end_to_end(caps: RedisCapService, sends: Sends, n: int, tasks: int) -> float:
    requests = [sends.request() for _ in range(n)]

    async def worker(mine: list[CapRequest]) -> None:
        for request in mine:
            decision = await caps.reserve(request)
            assert decision.allowed, decision

    began = time.perf_counter()
    await asyncio.gather(*(worker(requests[i::tasks]) for i in range(tasks)))
    return n / (time.perf_counter() - began)


async def evalsha_usec(client: aioredis.Redis) -> float:
    """redis-server's own time per EVALSHA since the last CONFIG RESETSTAT."""
    stats = await client.info("commandstats")
    return float(stats["cmdstat_evalsha"]["usec_per_call"])


async def inner_commands(client: aioredis.Redis) -> dict[str, tuple[float, float]]:
    """The commands the scripts called since the last CONFIG RESETSTAT: per EVALSHA, and
    redis-server's own microseconds per call."""
    stats = await client.info("commandstats")
    evals = stats["cmdstat_evalsha"]["calls"]
    return {
        name.removeprefix("cmdstat_").upper(): (s["calls"] / evals, s["usec_per_call"])
        for name, s in stats.items()
        if name != "cmdstat_evalsha" and s["calls"] >= evals / 10
    }


async def counter_sizes(client: aioredis.Redis, people: int) -> list[int]:
    async with client.pipeline(transaction=False) as pipe:
        for p in range(people):
            pipe.zcard(person_key(f"person-{p:05d}", "g"))
        return list(await pipe.execute())


async def check_same_call_as_the_service(
    client: aioredis.Redis, caps: RedisCapService, sha: str
) -> None:
    """A send reserved by the bench's own EVALSHA is the service's send: same record, same
    counters (else the bench would measure some other call)."""
    request = Sends(1).request()
    request = CapRequest(**{**request.__dict__, "send_key": "bench-check", "profile_id": "check"})
    keys, args = script_call(caps, request)
    await client.evalsha(sha, len(keys), *keys, *args)
    assert await client.zscore(person_key("check", "j:cart-recovery"), "bench-check") is not None
    assert (await caps.reserve(request)).allowed
    assert await client.zcard(person_key("check", "g")) == 1  # the service found the record


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server of the bench's own on a free port, without persistence."""
    port = free_port()
    server = subprocess.Popen(
        [str(find_binary("redis-server")), "--port", str(port), "--bind", "127.0.0.1", *VOLATILE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_taken(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


async def main(url: str, args: argparse.Namespace) -> None:
    client = aioredis.Redis.from_url(url, max_connections=256)
    try:
        await run(client, args)
    finally:
        await client.aclose()


async def run(client: aioredis.Redis, args: argparse.Namespace) -> None:
    caps = RedisCapService(client, POLICY)
    reserve_sha = await client.script_load(scripts.RESERVE)
    empty_sha = await client.script_load(EMPTY)
    await check_same_call_as_the_service(client, caps, reserve_sha)

    sends = Sends(args.people)
    calls = sends.calls(caps)
    # Fill every person's counters before measuring.
    await pipelined(client, reserve_sha, calls, args.people * args.fill, args.batch, args.pipelines)

    modes: dict[str, Callable[[str], Awaitable[float]]] = {
        "single": lambda sha: single(client, sha, calls, args.calls, args.tasks),
        "pipelined": lambda sha: pipelined(
            client, sha, calls, args.calls * 2, args.batch, args.pipelines
        ),
    }
    rates: dict[tuple[str, str], list[float]] = {}
    server: dict[str, list[float]] = {}
    e2e: list[float] = []
    inner: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for mode, measure in modes.items():
            for name, sha in (("empty", empty_sha), ("reserve", reserve_sha)):
                await client.config_resetstat()
                rates.setdefault((mode, name), []).append(await measure(sha))
                server.setdefault(name, []).append(await evalsha_usec(client))
                if (mode, name) == ("single", "reserve"):
                    inner = await inner_commands(client)
        e2e.append(await end_to_end(caps, sends, args.calls, args.tasks))

    sizes = await counter_sizes(client, args.people)
    print(
        f"{args.people} people, global counter {min(sizes)}-{max(sizes)} entries per person at"
        f" the end; {args.rounds} rounds, medians; one client process, redis-server on the same"
        " machine"
    )
    keys, argv = next(calls)
    print(
        "realistic send: 2 global + 1 channel + 1 tag + 1 journey rule"
        f" ({len(keys)} keys, {len(argv)} args)"
    )
    print(f"{'':<34}{'empty EVALSHA/s':>16}{'cap script/s':>14}{'ratio':>8}")
    for mode, label in (
        ("single", f"single ({args.tasks} tasks)"),
        ("pipelined", f"pipelined ({args.batch}/batch, {args.pipelines} in flight)"),
    ):
        base = statistics.median(rates[(mode, "empty")])
        ours = statistics.median(rates[(mode, "reserve")])
        print(f"{label:<34}{base:>16,.0f}{ours:>14,.0f}{ours / base:>7.2f}x")
    e2e_rate = statistics.median(e2e)
    single_base = statistics.median(rates[("single", "empty")])
    print(
        f"{'RedisCapService.reserve':<34}{single_base:>16,.0f}{e2e_rate:>14,.0f}"
        f"{e2e_rate / single_base:>7.2f}x  (end to end, {args.tasks} tasks, vs empty single)"
    )
    empty_us, reserve_us = (statistics.median(server[n]) for n in ("empty", "reserve"))
    print(
        f"redis-server time per EVALSHA (INFO commandstats): empty {empty_us:.1f} us,"
        f" cap script {reserve_us:.1f} us"
    )
    print(
        "inside the cap script (last single round; per EVALSHA x us each): "
        + ", ".join(f"{name} {n:.1f}x{us:.1f}" for name, (n, us) in sorted(inner.items()))
    )
    print("aim: cap script >= 0.7x the empty EVALSHA in both modes")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--fill", type=int, default=20, help="reservations per person first")
    parser.add_argument("--calls", type=int, default=10_000, help="calls per single measurement")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pipelines", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    options = parse()
    with redis_server() as url:
        asyncio.run(main(url, options))
