"""The Redis frequency-cap service: quiet hours, arbitration and caps for every marketing send.

Order of a decision: quiet hours (person's timezone; defer to their end or drop), then
arbitration (claim a slot in the person's window; the workflow sleeps to the window's end and
asks again; the highest priority wins), then one atomic check-and-reserve over every rule that
applies (global, channel, tags, journey). A refusal says which rule, the count and when it frees;
the policy (or the step) decides whether that defers, skips or ends the run.

Redis unreachable: `CapStoreUnavailable`, so the send activity fails and Temporal retries it
with backoff; nothing is ever sent unchecked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.caps import scripts
from engine.caps.checker import CapDecision, CapRequest, CapStoreUnavailable
from engine.caps.rules import (
    applicable_rules,
    frees_at,
    longest,
    quiet_until,
    window_start,
)
from engine.dsl.policy import Policy

log = structlog.get_logger(__name__)

_MARGIN = timedelta(days=1)
STRAGGLE = timedelta(days=7)
"""How far behind a person's latest reservation a check may be stamped and still see every
touch: counters keep reservations this much longer than the longest window. Workflow times are
nearly monotonic (deferred sends and retries lag by minutes or hours), so a week is ample."""


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def person_key(profile_id: str, name: str) -> str:
    """``jc:{p:<profile>}:<name>``: the hash tag keeps a person's keys in one cluster slot."""
    return f"jc:{{p:{profile_id}}}:{name}"


class RedisCapService:
    def __init__(self, redis: aioredis.Redis, policy: Policy) -> None:
        self._redis = redis
        self._policy = policy
        self._reserve = redis.register_script(scripts.RESERVE)
        self._release = redis.register_script(scripts.RELEASE)
        self._claim = redis.register_script(scripts.CLAIM)
        self._resolve = redis.register_script(scripts.RESOLVE)

    @property
    def policy(self) -> Policy:
        return self._policy

    async def reserve(self, request: CapRequest) -> CapDecision:
        try:
            return await self._decide(request)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise CapStoreUnavailable(f"cap store unreachable: {type(exc).__name__}") from exc
        except RedisError as exc:
            raise CapStoreUnavailable(f"cap store error: {exc}") from exc

    async def _decide(self, request: CapRequest) -> CapDecision:
        zone = ZoneInfo(request.timezone)
        if request.transactional:
            await self._count_transactional(request)
            return CapDecision(allowed=True)

        quiet_end = quiet_until(self._policy, request.at, zone)
        if quiet_end is not None:
            assert self._policy.quiet_hours is not None
            if self._policy.quiet_hours.action == "drop":
                return CapDecision(allowed=False, action="skip", rule="quiet_hours")
            return self._refused(request, "quiet_hours", quiet_end, {})

        window = self._policy.arbitration.window
        if window is not None:
            lost = await self._arbitrate(request, window)
            if lost is not None:
                return lost

        rules = applicable_rules(
            self._policy, request.channel, request.tags, request.journey_id, request.journey_caps
        )
        if not rules:
            return CapDecision(allowed=True)
        span = longest(rules)
        args: list[Any] = [
            request.send_key,
            _ms(request.at),
            int((span + STRAGGLE).total_seconds() * 1000),
            _ms(request.at - span - STRAGGLE),
            len(rules),
        ]
        for rule in rules:
            args += [rule.max, _ms(window_start(rule, request.at, zone))]
        keys = [person_key(request.profile_id, f"r:{request.send_key}")]
        keys += [person_key(request.profile_id, rule.counter) for rule in rules]
        decision = json.loads(await self._reserve(keys=keys, args=args))
        if decision["s"] != "refused":
            return CapDecision(allowed=True)
        rule = rules[int(decision["rule"]) - 1]
        free = frees_at(rule, _from_ms(decision["blocking"]), zone)
        detail = {"count": str(decision["count"]), "max": str(rule.max)}
        return self._refused(request, rule.label, free, detail)

    def _refused(
        self, request: CapRequest, rule: str, free: datetime, detail: dict[str, str]
    ) -> CapDecision:
        """Turn a refusal into what the step or the policy asks for."""
        on_capped = self._policy.on_capped
        if not request.defer_allowed or on_capped.action == "skip":
            return CapDecision(False, "skip", rule, free, detail)
        if on_capped.action == "exit":
            return CapDecision(False, "exit", rule, free, detail)
        first = request.first_attempt_at or request.at
        if free > first + on_capped.expire_after:
            return CapDecision(False, "expire", rule, free, detail)
        return CapDecision(False, "defer", rule, free, detail)

    async def _arbitrate(self, request: CapRequest, window: timedelta) -> CapDecision | None:
        """None when this send may go on to the caps; else wait for the window, or lost."""
        hash_key = person_key(request.profile_id, "arb:claims")
        ttl = int((window + _MARGIN).total_seconds() * 1000)
        claim = json.loads(
            await self._claim(
                keys=[person_key(request.profile_id, "arb:open"), hash_key],
                args=[
                    request.send_key,
                    _ms(request.at),
                    int(window.total_seconds() * 1000),
                    request.priority,
                    request.journey_id,
                    ttl,
                ],
            )
        )
        window_end = _from_ms(claim["w"])
        if request.at < window_end:
            return CapDecision(False, "arbitrate", None, window_end)
        winner = json.loads(await self._resolve(keys=[hash_key], args=[request.send_key]))
        if winner["k"] == request.send_key:
            return None
        detail = {"winner_priority": str(winner["p"]), "winner_journey": winner["j"]}
        return CapDecision(False, "skip", f"arbitration_lost:{winner['j']}", None, detail)

    async def _count_transactional(self, request: CapRequest) -> None:
        key = person_key(request.profile_id, "tx")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {request.send_key: _ms(request.at)})
            pipe.pexpire(key, int(timedelta(days=91).total_seconds() * 1000))
            await pipe.execute()

    async def release(self, send_key: str, profile_id: str) -> None:
        record_key = person_key(profile_id, f"r:{send_key}")
        try:
            stored = await self._redis.get(record_key)
            if stored is None:
                return
            decision = json.loads(stored)
            if decision.get("s") == "allowed":
                await self._release(keys=[record_key, *decision["keys"]], args=[send_key])
        except (RedisError, OSError) as exc:
            raise CapStoreUnavailable(f"cap store unreachable: {type(exc).__name__}") from exc
