"""A provider's rate limit holds across worker processes: three processes wired as `journey
worker` wires its connectors share one pace through a real Redis; a local receiver records when
each request arrives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from provider_stub import read_body

from connectors.base import RetryableSendError
from engine.caps.pacing import RedisPacer
from tests.harness import RedisServer, serve

pytestmark = pytest.mark.timeout(120)

RATE, BURST, WORKERS, EACH = 10.0, 3, 3, 15
SENDER = Path(__file__).with_name("pacing_sender.py")
REPO = Path(__file__).resolve().parents[2]


class Arrivals:
    """ASGI receiver: records the monotonic time of every request and answers 200."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await read_body(receive)
        self.times.append(time.monotonic())
        body = json.dumps({"id": f"r{len(self.times)}"}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def most_in_any_window(times: list[float], seconds: float) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_three_workers_together_keep_the_providers_rate(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    receiver = Arrivals()
    with serve(receiver) as url:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "JOURNEY_REDIS_URL": redis_server.url,
            "JOURNEY_CHANNELS": json.dumps({"webhook": "webhook"}),
            "JOURNEY_WEBHOOK_URL": f"{url}/hook",
            "JOURNEY_WEBHOOK_SECRET": "s3cret",
            "JOURNEY_LIMITS": json.dumps({"webhook": {"rate_per_second": RATE, "burst": BURST}}),
        }
        workers = [
            subprocess.Popen(
                [sys.executable, str(SENDER), f"w{n}-{tmp_path.name}", str(EACH)], env=env
            )
            for n in range(WORKERS)
        ]
        codes = [w.wait(timeout=90) for w in workers]
    assert codes == [0] * WORKERS
    assert len(receiver.times) == WORKERS * EACH
    # Each process alone would be allowed RATE a second; unshared they would send 3x that.
    # Shared: at most BURST + RATE * (t + one interval of lateness) requests start in any t
    # seconds. The receiver's clock adds the jitter of a busy machine between a sender's start
    # and the request's arrival (up to 0.2 s seen here): still far below 3 * RATE * t.
    for window in (1.0, 2.0):
        assert most_in_any_window(receiver.times, window) <= BURST + RATE * (window + 0.1 + 0.2)
    span = max(receiver.times) - min(receiver.times)
    assert span >= (WORKERS * EACH - BURST) / RATE * 0.9


async def test_an_unreachable_pacer_refuses_before_anything_is_sent(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")  # never started: nothing listens on its port
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    try:
        with pytest.raises(RetryableSendError) as caught:
            await RedisPacer(client, "sms", 10, 1).acquire()
        assert caught.value.code == "pacer_unavailable"
    finally:
        await client.aclose()


async def test_slots_follow_the_rate_in_arrival_order(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        # One slot every 10 s: the reservations below take far less, even on a busy machine
        # (at 10 a second, five of them took over 0.1 s there and the third found no wait).
        pacer = RedisPacer(client, f"order-{time.monotonic_ns()}", rate=0.1, burst=2)
        waits = [await pacer.reserve() for _ in range(5)]
    finally:
        await client.aclose()
    # Two at once (the burst), then one every 10 s, each later than the one before.
    assert waits[:2] == [0.0, 0.0]
    assert 0.0 < waits[2] < waits[3] < waits[4]
    assert waits[4] == pytest.approx(30, abs=2)
