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
from dataclasses import dataclass
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
    Rule,
    applicable_rules,
    frees_at,
    longest,
    quiet_until,
    window_start,
)
from engine.dsl.models import Cap
from engine.dsl.policy import Policy

log = structlog.get_logger(__name__)

_MARGIN = timedelta(days=1)
STRAGGLE = timedelta(days=7)
"""How far behind a person's latest reservation a check may be stamped and still see every
touch: counters keep reservations this much longer than the longest window. Workflow times are
nearly monotonic (deferred sends and retries lag by minutes or hours), so a week is ample."""


REFRESH = timedelta(days=1)
"""How often (wall clock) RESERVE refreshes a counter's expiry and trims it, rather than on
every send: counters live up to this much longer than the longest window and STRAGGLE after
their last reservation."""

_MS = timedelta(milliseconds=1)
_REFRESH_MS = REFRESH // _MS


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def person_key(profile_id: str, name: str) -> str:
    """``jc:{p:<profile>}:<name>``: the hash tag keeps a person's keys in one cluster slot."""
    return f"jc:{{p:{profile_id}}}:{name}"


_PLANS = 4096
"""Scopes (channel, tags, journey) whose rules a service keeps worked out; past that it starts
again (a policy has a few dozen in practice)."""


@dataclass(frozen=True)
class _Plan:
    """What every send of one scope asks of RESERVE, worked out once per scope."""

    rules: tuple[Rule, ...]
    counters: tuple[str, ...]
    """One per rule (global rules share ``g``)."""
    per_ms: tuple[int, ...]
    keep_ms: int
    """How long counters keep reservations: the longest window and STRAGGLE."""
    calendar: bool

    @classmethod
    def of(cls, rules: list[Rule]) -> _Plan:
        return cls(
            rules=tuple(rules),
            counters=tuple(rule.counter for rule in rules),
            per_ms=tuple(rule.per // _MS for rule in rules),
            keep_ms=(longest(rules) + STRAGGLE) // _MS,
            calendar=any(rule.calendar for rule in rules),
        )


def _refusal(reply: bytes | str) -> tuple[int, int, int]:
    """RESERVE's refusal ``r<rule> <count> <blocking_ms>``: rule number (from 1), count, and
    the reservation time that keeps the count at the limit."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    rule, count, blocking = text[1:].split(" ")
    return int(rule), int(count), int(float(blocking))


def _reserved_in(record: bytes | str) -> list[str]:
    """The counters an allowed reservation record reserved in; none for any other record.

    Records are ``a`` then ``<length>:<key>`` per counter; records of the JSON format before
    (``{"s": "allowed", "keys": [...]}``) are read too, since they live as long as counters.
    """
    data = record.encode() if isinstance(record, str) else record
    if data.startswith(b"{"):
        decision = json.loads(data)
        return list(decision["keys"]) if decision.get("s") == "allowed" else []
    if not data.startswith(b"a"):
        return []
    keys, at = [], 1
    while at < len(data):
        colon = data.index(b":", at)
        end = colon + 1 + int(data[at:colon])
        keys.append(data[colon + 1 : end].decode())
        at = end
    return keys


class RedisCapService:
    def __init__(self, redis: aioredis.Redis, policy: Policy) -> None:
        self._redis = redis
        self._policy = policy
        self._reserve = redis.register_script(scripts.RESERVE)
        self._release = redis.register_script(scripts.RELEASE)
        self._claim = redis.register_script(scripts.CLAIM)
        self._resolve = redis.register_script(scripts.RESOLVE)
        self._plans: dict[tuple[str, tuple[str, ...], str, tuple[Cap, ...]], _Plan] = {}

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

        on_capped = self._policy.on_capped
        first = request.first_attempt_at
        if (
            first is not None
            and request.defer_allowed
            and on_capped.action == "defer"
            and request.at > first + on_capped.expire_after
        ):
            # A deferred send asked again past its expiry (its run was held by a pause, or its
            # workers were down): stale, so not sent late even if a slot is free now.
            return CapDecision(False, "expire", "held_past_expiry", request.at, {})

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

        call = self.reserve_call(request)
        if call is None:
            return CapDecision(allowed=True)
        rules, keys, args = call
        reply = await self._reserve(keys=keys, args=args)
        if reply == 1:
            return CapDecision(allowed=True)
        number, count, blocking = _refusal(reply)
        rule = rules[number - 1]
        free = frees_at(rule, _from_ms(blocking), zone)
        detail = {"count": str(count), "max": str(rule.max)}
        return self._refused(request, rule.label, free, detail)

    def reserve_call(
        self, request: CapRequest
    ) -> tuple[tuple[Rule, ...], list[str], list[Any]] | None:
        """The rules of ``request`` and the keys and arguments of its RESERVE script; None when
        no rule applies."""
        scope = (request.channel, request.tags, request.journey_id, request.journey_caps)
        plan = self._plans.get(scope)
        if plan is None:
            if len(self._plans) >= _PLANS:
                self._plans.clear()
            plan = self._plans[scope] = _Plan.of(applicable_rules(self._policy, *scope))
        if not plan.rules:
            return None
        at = _ms(request.at)
        args: list[Any] = [request.send_key, at, plan.keep_ms, at - plan.keep_ms, _REFRESH_MS]
        if plan.calendar:
            zone = ZoneInfo(request.timezone)
            for rule in plan.rules:
                args += [rule.max, _ms(window_start(rule, request.at, zone))]
        else:
            for rule, per in zip(plan.rules, plan.per_ms, strict=True):
                args += [rule.max, at - per + 1]  # window_start of a rolling window
        prefix = person_key(request.profile_id, "")
        keys = [f"{prefix}r:{request.send_key}", f"{prefix}refreshed"]
        keys += [prefix + counter for counter in plan.counters]
        return plan.rules, keys, args

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
            counters = [] if stored is None else _reserved_in(stored)
            if counters:
                await self._release(keys=[record_key, *counters], args=[send_key])
        except (RedisError, OSError) as exc:
            raise CapStoreUnavailable(f"cap store unreachable: {type(exc).__name__}") from exc
