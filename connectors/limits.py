"""Rate and concurrency limits around a connector's ``send``, applied by the registry.

A large journey starts thousands of sends at once; providers throttle (Aliyun SMS, WeCom, FCM all
answer "too many requests" past their rate). Waiting here, inside the send activity, is cheaper
than a refused request and a Temporal retry: the activity simply takes a little longer.

The concurrency limit holds per worker process. The rate is kept by a *pacer*: by default a token
bucket in this process (with N workers the provider would see up to N times the rate); the worker
gives the registry a pacer shared by every worker through Redis (``engine.caps.pacing``), so the
rate holds for the whole fleet. A pacer that cannot be reached raises
:class:`~connectors.base.RetryableSendError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from connectors.base import Connector, DeliveryReceipt, OutboundMessage, SendLimits

__all__ = [
    "LimitedConnector",
    "Pacer",
    "PacerFactory",
    "TokenBucket",
    "admitted",
    "limits_of",
    "local_pacer",
]


class Pacer(Protocol):
    """Spaces a connector's requests: ``acquire`` returns when the next one may start."""

    async def acquire(self) -> None: ...


PacerFactory = Callable[[str, float, int], Pacer]
"""Builds the pacer of one connector from (connector name, rate per second, burst)."""


class TokenBucket:
    """An asyncio token bucket (GCRA): ``rate`` tokens per second, at most ``burst`` saved up.

    Each caller reserves its slot before sleeping, so waiters go in arrival order and the bucket
    needs no lock (it is used from one event loop).
    """

    def __init__(
        self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._tat = 0.0  # theoretical arrival time of the next token

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it (0 when one was available)."""
        now = self._clock()
        tat = max(self._tat, now)
        wait = max(0.0, tat - self._tolerance - now)
        self._tat = tat + self._interval
        return wait

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


def local_pacer(name: str, rate: float, burst: int) -> Pacer:
    """A token bucket in this process: the rate holds per worker."""
    return TokenBucket(rate, burst)


def limits_of(connector: object) -> SendLimits:
    """A connector's declared ``limits`` (none when it declares none)."""
    limits = getattr(connector, "limits", None)
    return limits if isinstance(limits, SendLimits) else SendLimits()


class LimitedConnector:
    """Wraps a connector so its sends respect ``limits``; everything else passes through."""

    def __init__(
        self, inner: Connector, limits: SendLimits, pacer_factory: PacerFactory = local_pacer
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.limits = limits
        self._bucket = (
            pacer_factory(inner.name, limits.rate_per_second, limits.burst)
            if limits.rate_per_second is not None
            else None
        )
        self._slots = asyncio.Semaphore(limits.max_concurrency) if limits.max_concurrency else None

    def __getattr__(self, name: str) -> Any:
        # quota, settings and other optional parts of the wrapped connector
        return getattr(self.inner, name)

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[Connector]:
        """Wait until the limits let one send through; yields the wrapped connector to call,
        while the slot is held (see :func:`admitted`)."""
        if self._slots is None:
            if self._bucket is not None:
                await self._bucket.acquire()
            yield self.inner
            return
        async with self._slots:
            # The token is taken once a slot is held, so the rate is measured at the provider.
            if self._bucket is not None:
                await self._bucket.acquire()
            yield self.inner

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        async with self.admitted() as inner:
            return await inner.send(message)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def admitted(connector: Connector) -> AsyncIterator[Connector]:
    """``connector`` once its limits let one send through (at once when it has none): call
    ``send`` on what this yields, inside the block. For callers with work to do between being let
    through and the provider call: the send activity records an at-most-once attempt there, so a
    send still waiting for a token when its worker dies was never on record as attempted."""
    if isinstance(connector, LimitedConnector):
        async with connector.admitted() as inner:
            yield inner
    else:
        yield connector
