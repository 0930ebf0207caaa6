"""Anomalies: a journey's suppression, failure, conversion and unsubscribe rates of the last
hour and the last day, each against the journey's own trailing baseline.

Method. For each rate and window W (the hour or the day ending at ``at``), the baseline is the
same rate over the BASELINE (7 days) before W starts, smoothed as (k + 1) / (n + 2) so that a
clean week is not a rate of exactly 0. W's rate p over n is an anomaly when both sides have at
least MIN_SAMPLE in the denominator, it moved the bad way (up for suppression, failure and
unsubscribes; down for conversion) by at least MIN_CHANGE (5 points), and by more than Z (3)
standard errors of the baseline (binomial: sqrt(p0 (1 - p0) / n)): a change that chance alone
would show about once in 700 checks.

Rates: suppression = suppressed or expired / sends decided; failure = failed / sends handed to
a provider (sent, failed, unknown); conversion = converted / runs ended; unsubscribe = people
sent a message in W who unsubscribed in W (event or consent) / people sent a message in W.

Each anomaly found is logged (``journey_anomaly``); with JOURNEY_ALERT_WEBHOOK set it is also
POSTed there as JSON, once per (journey, rate, window) per window length: the Redis key
``ja:{a:<journey>}:<rate>:<window>`` (SET NX, expiring after the window) holds it back while
the anomaly lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from engine.store import Store
from engine.store.health import WindowCounts

log = structlog.get_logger(__name__)

Rate = Literal["suppression", "failure", "conversion", "unsubscribe"]
WINDOWS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
BASELINE = timedelta(days=7)
MIN_SAMPLE = 20
MIN_CHANGE = 0.05
Z = 3.0


@dataclass(frozen=True)
class Anomaly:
    journey_id: str
    rate: Rate
    window: str
    """hour | day"""
    value: float
    """The window's rate."""
    baseline: float
    """The trailing baseline's rate (smoothed)."""
    count: int
    sample: int
    z: float
    at: str
    """The end of the window (ISO 8601)."""


def _parts(counts: WindowCounts, rate: Rate) -> tuple[int, int]:
    """(numerator, denominator) of ``rate``."""
    if rate == "suppression":
        return counts.suppressed, counts.decided
    if rate == "failure":
        return counts.failed, counts.attempted
    if rate == "conversion":
        return counts.converted, counts.ended
    return counts.unsubscribed, counts.reached


def judge(
    journey_id: str, rate: Rate, window: str, now: WindowCounts, before: WindowCounts, at: datetime
) -> Anomaly | None:
    """The anomaly of ``rate`` in the window against the baseline, if there is one."""
    k, n = _parts(now, rate)
    k0, n0 = _parts(before, rate)
    if n < MIN_SAMPLE or n0 < MIN_SAMPLE:
        return None
    p, p0 = k / n, (k0 + 1) / (n0 + 2)
    z = (p - p0) / math.sqrt(p0 * (1 - p0) / n)
    worse = -z if rate == "conversion" else z
    if worse <= Z or abs(p - p0) < MIN_CHANGE:
        return None
    return Anomaly(
        journey_id, rate, window, round(p, 4), round(p0, 4), k, n, round(z, 2), at.isoformat()
    )


async def find_anomalies(store: Store, journey_id: str, at: datetime) -> list[Anomaly]:
    """Every rate of the journey's last hour and day that left its baseline the bad way."""
    found = []
    for window, length in WINDOWS.items():
        start = at - length
        now = await store.window_counts(journey_id, start, at)
        before = await store.window_counts(journey_id, start - BASELINE, start)
        for rate in ("suppression", "failure", "conversion", "unsubscribe"):
            anomaly = judge(journey_id, rate, window, now, before, at)
            if anomaly is not None:
                found.append(anomaly)
    return found


async def alert(
    anomalies: list[Anomaly],
    redis: aioredis.Redis,
    webhook: str | None,
    http: httpx.AsyncClient,
) -> int:
    """Log each anomaly and POST each one not alerted within its window; returns the POSTs."""
    posted = 0
    for anomaly in anomalies:
        log.warning("journey_anomaly", **asdict(anomaly))
        if webhook is None:
            continue
        key = f"ja:{{a:{anomaly.journey_id}}}:{anomaly.rate}:{anomaly.window}"
        keep = int(WINDOWS[anomaly.window].total_seconds() * 1000)
        if not await redis.set(key, anomaly.at, nx=True, px=keep):
            continue  # already alerted while this window lasts
        try:
            response = await http.post(
                webhook, json={"event": "journey_anomaly", **asdict(anomaly)}
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            await redis.delete(key)  # not delivered: the next check tries again
            log.warning("anomaly_alert_failed", journey_id=anomaly.journey_id, error=str(exc))
            continue
        posted += 1
    return posted


async def watch_periodically(
    store: Store,
    redis: aioredis.Redis,
    webhook: str | None,
    stop: asyncio.Event,
    every: float = 300.0,
) -> None:
    """Check every deployed journey every ``every`` seconds until ``stop`` is set, logging and
    alerting what it finds (run it beside the API: the status of a journey watches itself;
    several processes may run it, the Redis key holds repeated alerts back)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        while not stop.is_set():
            try:
                now = datetime.now(UTC)
                for version in await store.latest_versions():
                    found = await find_anomalies(store, version.journey_id, now)
                    await alert(found, redis, webhook, http)
            except (SQLAlchemyError, RedisError, OSError) as exc:
                log.warning("anomaly_check_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
