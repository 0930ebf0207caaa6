"""Provider rate limits shared by every worker: one GCRA schedule per connector in Redis.

A provider's limit (Aliyun SMS: so many requests a second per account) holds for the brand, not for
one worker process. Each send reserves the next free slot of its connector in one script call
(``TIME`` for the clock: the one clock every worker shares) and sleeps until that slot, so three
workers together send at the configured rate, never three times it.

The guarantee (GCRA): over any interval of ``t`` seconds at most ``burst + rate * (t + late)``
requests start, where ``late`` is how late a sleeper may wake and still use its slot (one slot's
interval, at least 20 ms). A worker that wakes later than that (a stalled process, a busy event
loop) does not fire its overdue sends together: each takes a new slot, so a stall wastes slots
rather than bunching requests. What the provider sees can differ further by network jitter.
Reservations are made in arrival order, so waiters are served first come, first served; a worker
that dies after reserving only wastes its slot.

Redis unreachable: :class:`~connectors.base.RetryableSendError` before anything is sent, so the
send activity retries later — a send never goes out unpaced. Keys ``jr:{rate:<connector>}`` are
hash-tagged per connector (one slot each on Redis Cluster) and expire once idle.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.base import RetryableSendError
from connectors.limits import Pacer, PacerFactory

# KEYS[1] the connector's theoretical arrival time (µs); ARGV: interval µs, burst tolerance µs.
# Returns the µs to wait before the reserved slot.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX',
    math.floor((next_tat - now) / 1000) + 1000)
return wait
"""


_LATE_AT_LEAST = 0.02
"""Seconds a sleeper may wake late and still use its slot (at least one interval)."""


class RedisPacer:
    """The slots of one connector, shared through Redis by every process that uses it."""

    def __init__(self, client: aioredis.Redis, name: str, rate: float, burst: int) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._key = f"jr:{{rate:{name}}}"
        interval = 1_000_000 / rate
        self._args = (round(interval), round((burst - 1) * interval))
        self._late = max(interval / 1_000_000, _LATE_AT_LEAST)
        self._script = client.register_script(_RESERVE)

    async def reserve(self) -> float:
        """Take the connector's next slot; the seconds to wait before using it."""
        try:
            waited = await self._script(keys=[self._key], args=list(self._args))
        except (RedisError, OSError) as exc:
            raise RetryableSendError(
                "provider rate limiter unavailable", code="pacer_unavailable"
            ) from exc
        return int(waited) / 1_000_000

    async def acquire(self) -> None:
        while True:
            wait = await self.reserve()
            if wait <= 0:
                return
            slot = time.monotonic() + wait
            await asyncio.sleep(wait)
            if time.monotonic() - slot <= self._late:
                return
            # Woke too late (a stalled worker): sending now would bunch with the slots after
            # ours, so take a new one.


def redis_pacers(client: aioredis.Redis) -> PacerFactory:
    """A pacer factory for the connector registry: every connector's rate shared via ``client``."""

    def build(name: str, rate: float, burst: int) -> Pacer:
        return RedisPacer(client, name, rate, burst)

    return build
