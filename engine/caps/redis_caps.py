"""The Redis frequency-cap service: quiet hours, arbitration and caps for every marketing send.

Order of a decision: quiet hours (person's timezone; defer to their end or drop), then
arbitration (claim a slot in the person's window; the workflow sleeps to the window's end and
asks again; the highest priority wins), then one atomic check-and-reserve over every rule that
applies (global, channel, tags, journey). A refusal says which rule, the count and when it frees;
the policy (or the step) decides whether that defers, skips or ends the run.

Redis unreachable: `CapStoreUnavailable`, so the send activity fails and Temporal retries it
with backoff; nothing is ever sent unchecked.

OneID merges: a request names the survivor and the ids merged into it (`CapRequest.merged_ids`).
Before deciding, each merged id is folded into the survivor once (see `RedisCapService.fold`):
FORWARD, in the merged id's slot, leaves a forward to the survivor there, after which every
script in that slot answers ``m<survivor>`` and counts nothing; FOLD, in the survivor's slot,
then copies the merged id's counters, reservation records and arbitration claims in one atomic
step and notes the id as folded. The two slots may live on different Cluster nodes, so the two
steps are not one transaction; they are ordered and idempotent instead: a reservation made under
the merged id before the forward is among what FOLD copies, one tried after it is redirected to
the survivor (after the fold), and a crash between the two steps is finished by the next send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.caps import scripts
from engine.caps.budgets import RECORD_KEEP, BudgetLimit, budget_key, budgets_for
from engine.caps.checker import CapDecision, CapRequest, CapStoreUnavailable
from engine.caps.rules import (
    ChannelQuota,
    Rule,
    applicable_rules,
    frees_at,
    longest,
    quiet_until,
    window_start,
)
from engine.dsl.models import Cap
from engine.dsl.policy import LONGEST_WINDOW, Policy

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

MERGE_KEEP = LONGEST_WINDOW + STRAGGLE + REFRESH
"""How long a merged id's forward and the survivor's note of folded ids live at least (longer
when the merged id's counters do)."""
_MERGE_KEEP_MS = MERGE_KEEP // _MS
_HOPS = 8
"""Forwards followed at most in one decision (a chain longer than that is a loop)."""
_TX_KEEP_MS = timedelta(days=91) // _MS
"""How long the transactional counter keeps its touches."""
_BUDGET_KEEP_MS = RECORD_KEEP // _MS
BUDGET_EXHAUSTED = "budget_exhausted"
"""The reason of a send a budget refused (suppressed: a budget does not free with time)."""


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
            calendar=any(rule.local for rule in rules),
        )


class _Moved(Exception):
    """A script found the person merged into ``survivor``: nothing was done in its slot."""

    def __init__(self, survivor: str) -> None:
        super().__init__(survivor)
        self.survivor = survivor


def _moved(reply: object) -> str | None:
    """The survivor of an ``m<survivor>`` reply, else None."""
    if isinstance(reply, bytes) and reply.startswith(b"m"):
        return reply[1:].decode()
    if isinstance(reply, str) and reply.startswith("m"):
        return reply[1:]
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
    def __init__(
        self,
        redis: aioredis.Redis,
        policy: Policy,
        quotas: Mapping[str, ChannelQuota] | None = None,
    ) -> None:
        """``quotas``: channel -> the provider's own limit per person, enforced on top of the
        policy's rules for that channel."""
        self._redis = redis
        self._policy = policy
        self._quotas = dict(quotas or {})
        self._reserve = redis.register_script(scripts.RESERVE)
        self._release = redis.register_script(scripts.RELEASE)
        self._claim = redis.register_script(scripts.CLAIM)
        self._resolve = redis.register_script(scripts.RESOLVE)
        self._count = redis.register_script(scripts.COUNT)
        self._forward = redis.register_script(scripts.FORWARD)
        self._fold_script = redis.register_script(scripts.FOLD)
        self._budget_reserve = redis.register_script(scripts.BUDGET_RESERVE)
        self._budget_release = redis.register_script(scripts.BUDGET_RELEASE)
        self._plans: dict[tuple[str, tuple[str, ...], str, tuple[Cap, ...]], _Plan] = {}
        self._folded: set[tuple[str, str]] = set()
        """(merged id, survivor) pairs this process saw folded: a fold is final."""
        # Counters a person may hold that workers before the counter index did not list.
        known = {"g", "tx", *(f"c:{c}" for c in (*policy.caps.channels, *self._quotas))}
        self._known_counters = frozenset(known | {f"t:{t}" for t in policy.caps.tags})

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
        for _ in range(_HOPS):
            for merged in request.merged_ids:
                await self.fold(merged, request.profile_id, request.at)
            try:
                return await self._decide_as(request)
            except _Moved as moved:
                # The id was merged after the caller looked it up: decide for the survivor.
                await self.fold(request.profile_id, moved.survivor, request.at)
                request = replace(request, profile_id=moved.survivor, merged_ids=())
        raise CapStoreUnavailable(f"merge forwards of {request.profile_id} do not end")

    async def _decide_as(self, request: CapRequest) -> CapDecision:
        zone = ZoneInfo(request.timezone)
        budgets = budgets_for(self._policy, request.journey_id, request.budget, request.tags)
        if request.transactional:
            # Exempt from the caps, not from the budgets: a budget counts what is spent.
            replies = await self._together(request, None, budgets)
            refused = await self._budget_refusal(request, budgets, replies)
            if refused is not None:
                return refused
            await self._count_transactional(request)
            return CapDecision(allowed=True)

        on_capped = self._policy.on_capped
        first = request.first_attempt_at
        if (
            request.held
            and first is not None
            and request.defer_allowed
            and on_capped.action == "defer"
            and request.at > first + on_capped.expire_after
        ):
            # A deferred send asked again past its expiry because an operator's pause held its
            # run: stale, so not sent late even if a slot is free now. (A deferral's own retry
            # lands a little after the slot it waited for, arbitration window included: that is
            # on time, not late.)
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
        if call is None and not budgets:
            return CapDecision(allowed=True)
        replies = await self._together(request, call, budgets)
        if call is None:
            refused = await self._budget_refusal(request, budgets, replies)
            return CapDecision(allowed=True) if refused is None else refused
        rules, keys, _ = call
        reply, budget_replies = replies[0], replies[1:]
        survivor = _moved(reply)
        if survivor is not None:
            # Nothing counted for the person here; the budgets' shares stay reserved under the
            # send key, so asking again for the survivor does not count them twice.
            raise _Moved(survivor)
        if reply == 1:
            refused = await self._budget_refusal(request, budgets, budget_replies)
            if refused is None:
                return CapDecision(allowed=True)
            # The caps said yes, a budget said no: the send does not go, so its touch is
            # given back (the record says released: a retry decides afresh).
            await self._release(keys=[keys[0], keys[2], *keys[4:]], args=[request.send_key])
            return refused
        await self._give_back(request.send_key, budgets, budget_replies)
        number, count, blocking = _refusal(reply)
        rule = rules[number - 1]
        free = frees_at(rule, _from_ms(blocking), zone)
        detail = {"count": str(count), "max": str(rule.max)}
        return self._refused(request, rule.label, free, detail)

    async def _together(
        self,
        request: CapRequest,
        call: tuple[tuple[Rule, ...], list[str], list[Any]] | None,
        budgets: tuple[BudgetLimit, ...],
    ) -> list[Any]:
        """Run the caps' RESERVE (when ``call``) and one BUDGET_RESERVE per budget in one
        pipeline: one network round trip. Each script is atomic in its own slot; the caller
        gives back what one reserved when another refused."""
        calls: list[tuple[Any, list[str], list[Any]]] = []
        if call is not None:
            calls.append((self._reserve, call[1], call[2]))
        for budget in budgets:
            keys = [
                budget_key(budget.scope, "used"),
                budget_key(budget.scope, f"r:{request.send_key}"),
            ]
            args = [
                request.value,
                -1 if budget.max_sends is None else budget.max_sends,
                -1 if budget.max_value is None else budget.max_value,
                _BUDGET_KEEP_MS,
            ]
            calls.append((self._budget_reserve, keys, args))
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [await script(keys=keys, args=args)]
        for _ in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for script, keys, args in calls:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
            if not any(isinstance(reply, NoScriptError) for reply in replies):
                break
            # A restarted Redis forgot the scripts: load them and run them all again (each is
            # idempotent on the send key, so one that did run answers the same).
            for script, _, _ in calls:
                await self._redis.script_load(script.script)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)

    async def _budget_refusal(
        self, request: CapRequest, budgets: tuple[BudgetLimit, ...], replies: list[Any]
    ) -> CapDecision | None:
        """None when every budget reserved the send; else the refusal, every share the send
        did reserve given back."""
        for budget, reply in zip(budgets, replies, strict=True):
            if reply == 1:
                continue
            await self._give_back(request.send_key, budgets, replies)
            text = _text(reply)
            sends = text[0] == "s"
            limit = budget.max_sends if sends else budget.max_value
            detail = {
                "budget": budget.scope,
                "count": text[1:],
                "max": f"{limit} {'sends' if sends else 'value'}",
            }
            log.info(
                "budget_exhausted",
                journey_id=request.journey_id,
                budget=budget.scope,
                send_key=request.send_key,
            )
            return CapDecision(False, "skip", BUDGET_EXHAUSTED, None, detail)
        return None

    async def _give_back(
        self, send_key: str, budgets: tuple[BudgetLimit, ...], replies: list[Any]
    ) -> None:
        """Release the shares ``replies`` say were reserved."""
        for budget, reply in zip(budgets, replies, strict=True):
            if reply == 1:
                await self._release_budget(budget.scope, send_key)

    async def _release_budget(self, scope: str, send_key: str) -> None:
        await self._budget_release(
            keys=[budget_key(scope, "used"), budget_key(scope, f"r:{send_key}")], args=[]
        )

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
            plan = self._plans[scope] = _Plan.of(
                applicable_rules(self._policy, *scope, self._quotas)
            )
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
        keys = [f"{prefix}r:{request.send_key}", f"{prefix}refreshed", f"{prefix}merged"]
        keys += [f"{prefix}idx", *(prefix + counter for counter in plan.counters)]
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
        reply = await self._claim(
            keys=[
                person_key(request.profile_id, "arb:open"),
                hash_key,
                person_key(request.profile_id, "merged"),
            ],
            args=[
                request.send_key,
                _ms(request.at),
                int(window.total_seconds() * 1000),
                request.priority,
                request.journey_id,
                ttl,
            ],
        )
        survivor = _moved(reply)
        if survivor is not None:
            raise _Moved(survivor)
        claim = json.loads(reply)
        window_end = _from_ms(claim["w"])
        if request.at < window_end:
            return CapDecision(False, "arbitrate", None, window_end)
        winner = json.loads(await self._resolve(keys=[hash_key], args=[request.send_key]))
        if winner["k"] == request.send_key:
            return None
        detail = {"winner_priority": str(winner["p"]), "winner_journey": winner["j"]}
        return CapDecision(False, "skip", f"arbitration_lost:{winner['j']}", None, detail)

    async def _count_transactional(self, request: CapRequest) -> None:
        reply = await self._count(
            keys=[
                person_key(request.profile_id, "tx"),
                person_key(request.profile_id, "merged"),
                person_key(request.profile_id, "idx"),
            ],
            args=[request.send_key, _ms(request.at), _TX_KEEP_MS, "tx"],
        )
        survivor = _moved(reply)
        if survivor is not None:
            raise _Moved(survivor)

    async def release(self, send_key: str, profile_id: str, budgets: tuple[str, ...] = ()) -> None:
        try:
            for scope in budgets:
                await self._release_budget(scope, send_key)
        except (RedisError, OSError) as exc:
            raise CapStoreUnavailable(f"cap store unreachable: {type(exc).__name__}") from exc
        await self._release_caps(send_key, profile_id)

    async def _release_caps(self, send_key: str, profile_id: str) -> None:
        try:
            for _ in range(_HOPS):
                record_key = person_key(profile_id, f"r:{send_key}")
                forward_key = person_key(profile_id, "merged")
                stored, forward = await self._redis.mget(record_key, forward_key)
                if forward is None:
                    counters = [] if stored is None else _reserved_in(stored)
                    if not counters:
                        return
                    reply = await self._release(
                        keys=[record_key, forward_key, *counters], args=[send_key]
                    )
                    survivor = _moved(reply)
                    if survivor is None:
                        return
                else:
                    survivor = _text(forward)
                # Merged: the reservation lives on in the survivor's keys once folded.
                await self.fold(profile_id, survivor, None)
                profile_id = survivor
        except (RedisError, OSError) as exc:
            raise CapStoreUnavailable(f"cap store unreachable: {type(exc).__name__}") from exc
        raise CapStoreUnavailable(f"merge forwards of {profile_id} do not end")

    async def fold(self, merged: str, survivor: str, at: datetime | None) -> None:
        """Make ``merged``'s touches, reservations and arbitration claims the survivor's, and
        forward every later script under ``merged`` to ``survivor``. Idempotent; done once per
        pair (the survivor notes it), and remembered by this process. ``at`` (the caller's
        time) decides which arbitration windows are still open: both people's open windows
        become one. None: windows stay as they are (the claims are copied all the same)."""
        asked = (merged, survivor)
        for _ in range(_HOPS):
            if merged == survivor or (merged, survivor) in self._folded:
                break
            if await self._redis.hexists(person_key(survivor, "folded"), merged):
                break
            names = await self._forward(
                keys=[
                    person_key(merged, "merged"),
                    person_key(merged, "idx"),
                    person_key(merged, "refreshed"),
                ],
                args=[survivor, _MERGE_KEEP_MS],
            )
            counters = sorted({_text(name) for name in names} | self._known_counters)
            keys, args = await self._fold_call(merged, survivor, counters, at)
            reply = await self._fold_script(keys=keys, args=args)
            later = _moved(reply)
            if later is None:
                if reply == 1:
                    log.info("cap_person_folded", merged_id=merged, survivor_id=survivor)
                break
            survivor = later  # merged again since the caller looked: fold into the last one
        else:
            raise CapStoreUnavailable(f"merge forwards of {merged} do not end")
        if len(self._folded) >= _PLANS:
            self._folded.clear()
        self._folded.update({asked, (merged, survivor)})

    async def _fold_call(
        self, merged: str, survivor: str, counters: list[str], at: datetime | None
    ) -> tuple[list[str], list[Any]]:
        """FOLD's keys and arguments: a snapshot of ``merged``'s keys, final since FORWARD."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in counters:
                pipe.zrange(person_key(merged, name), 0, -1, withscores=True)
                pipe.pttl(person_key(merged, name))
            for name in ("arb:open", "arb:claims"):
                pipe.pttl(person_key(merged, name))
            pipe.get(person_key(merged, "arb:open"))
            pipe.hgetall(person_key(merged, "arb:claims"))
            replies = await pipe.execute()
        entries: dict[str, tuple[list[tuple[bytes, float]], int]] = {
            name: (replies[2 * i], replies[2 * i + 1]) for i, name in enumerate(counters)
        }
        open_ttl, claims_ttl, open_end, claims = replies[2 * len(counters) :]
        counters = [name for name in counters if entries[name][0]]
        sends = sorted({member for found, _ in entries.values() for member, _ in found})
        async with self._redis.pipeline(transaction=False) as pipe:
            for send in sends:
                pipe.get(person_key(merged, f"r:{_text(send)}"))
                pipe.pttl(person_key(merged, f"r:{_text(send)}"))
            found_records = await pipe.execute()
        old, new = person_key(merged, ""), person_key(survivor, "")
        records: list[tuple[str, str, int]] = []
        for i, send in enumerate(sends):
            stored, ttl = found_records[2 * i], found_records[2 * i + 1]
            reserved = [] if stored is None else _reserved_in(stored)
            if reserved and ttl > 0:
                moved = [new + key[len(old) :] for key in reserved if key.startswith(old)]
                record = "a" + "".join(f"{len(key)}:{key}" for key in moved)
                records.append((f"{new}r:{_text(send)}", record, ttl))
        keep = max([_MERGE_KEEP_MS, *(ttl for _, ttl in entries.values())])
        keys = [f"{new}folded", f"{new}idx", f"{new}arb:open", f"{new}arb:claims", f"{new}merged"]
        keys += [new + name for name in counters] + [key for key, _, _ in records]
        args: list[Any] = [
            merged,
            len(counters),
            len(records),
            keep,
            "" if open_end is None or open_ttl <= 0 else _text(open_end),
            max(open_ttl, 1),
            max(claims_ttl, 1),
            "" if at is None else _ms(at),
        ]
        for name in counters:
            found, ttl = entries[name]
            args += [name, max(ttl, 1), len(found)]
            for member, score in found:
                args += [int(score), member]
        for _, record, ttl in records:
            args += [record, ttl]
        args.append(len(claims))
        for send, claim in claims.items():
            args += [send, claim]
        return keys, args
