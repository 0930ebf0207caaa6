"""Budgets reserved with the caps, on a real redis-server: never overspent, given back by a
send that fails for good, and a send refused by either the caps or a budget costs neither."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.caps.budgets import budget_scopes, budget_usage
from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.dsl.models import Budget
from engine.dsl.policy import Policy
from tests.harness import RedisServer

pytestmark = pytest.mark.timeout(60)

NOON = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def service(client: aioredis.Redis, **policy: Any) -> RedisCapService:
    return RedisCapService(client, Policy.model_validate(policy))


def journey() -> str:
    return f"j-{uuid.uuid4().hex[:8]}"


def request(journey_id: str, **fields: Any) -> CapRequest:
    base: dict[str, Any] = {
        "send_key": uuid.uuid4().hex,
        "profile_id": f"p-{uuid.uuid4().hex[:8]}",
        "journey_id": journey_id,
        "channel": "sms",
        "priority": 50,
        "at": NOON,
        "timezone": "Asia/Shanghai",
    }
    return CapRequest(**{**base, **fields})


async def test_a_send_past_the_budget_is_suppressed_budget_exhausted(
    client: aioredis.Redis,
) -> None:
    caps, jid = service(client), journey()
    budget = Budget(max_sends=2)
    first = request(jid, budget=budget)
    assert (await caps.reserve(first)).allowed
    assert (await caps.reserve(first)).allowed  # a retried activity never counts twice
    assert (await caps.reserve(request(jid, budget=budget))).allowed
    refused = await caps.reserve(request(jid, budget=budget))
    assert (refused.allowed, refused.action, refused.rule) == (False, "skip", "budget_exhausted")
    assert refused.detail["budget"] == f"journey:{jid}"
    assert (await budget_usage(client, f"journey:{jid}")).sends == 2


async def test_the_value_budget_counts_what_each_message_is_worth(
    client: aioredis.Redis,
) -> None:
    caps, jid = service(client), journey()
    budget = Budget(max_value=50)
    assert (await caps.reserve(request(jid, budget=budget, value=20))).allowed
    assert (await caps.reserve(request(jid, budget=budget, value=20))).allowed
    assert not (await caps.reserve(request(jid, budget=budget, value=20))).allowed
    assert (await caps.reserve(request(jid, budget=budget, value=10))).allowed  # fits exactly
    usage = await budget_usage(client, f"journey:{jid}")
    assert (usage.sends, usage.value) == (3, 50)


async def test_a_send_that_fails_for_good_gives_its_budget_back(client: aioredis.Redis) -> None:
    caps, jid = service(client), journey()
    budget = Budget(max_sends=1, max_value=20)
    failed = request(jid, budget=budget, value=20)
    assert (await caps.reserve(failed)).allowed
    assert not (await caps.reserve(request(jid, budget=budget, value=20))).allowed
    await caps.release(failed.send_key, failed.profile_id, budget_scopes(jid, ()))
    await caps.release(failed.send_key, failed.profile_id, budget_scopes(jid, ()))  # once only
    assert (await budget_usage(client, f"journey:{jid}")).sends == 0
    assert (await caps.reserve(request(jid, budget=budget, value=20))).allowed


async def test_a_send_the_caps_refuse_costs_no_budget(client: aioredis.Redis) -> None:
    caps, jid = service(client, caps={"global": [{"max": 1, "per": "1d"}]}), journey()
    budget = Budget(max_sends=10)
    person = f"p-{uuid.uuid4().hex[:8]}"
    assert (await caps.reserve(request(jid, profile_id=person, budget=budget))).allowed
    capped = await caps.reserve(request(jid, profile_id=person, budget=budget))
    assert capped.rule == "global:1/1d"
    assert (await budget_usage(client, f"journey:{jid}")).sends == 1


async def test_a_send_the_budget_refuses_costs_the_person_no_touch(
    client: aioredis.Redis,
) -> None:
    caps = service(client, caps={"global": [{"max": 1, "per": "1d"}]})
    person = f"p-{uuid.uuid4().hex[:8]}"
    spent = journey()
    assert (await caps.reserve(request(spent, budget=Budget(max_sends=1)))).allowed
    refused = await caps.reserve(request(spent, profile_id=person, budget=Budget(max_sends=1)))
    assert refused.rule == "budget_exhausted"
    # The refused send did not count against the person: another journey may still reach them.
    assert (await caps.reserve(request(journey(), profile_id=person))).allowed


async def test_a_tag_budget_is_shared_by_every_journey_with_the_tag(
    client: aioredis.Redis,
) -> None:
    tag = f"coupon{uuid.uuid4().hex[:6]}"
    caps = service(client, budgets={tag: {"max_sends": 2}})
    assert (await caps.reserve(request(journey(), tags=(tag,)))).allowed
    assert (await caps.reserve(request(journey(), tags=(tag,)))).allowed
    refused = await caps.reserve(request(journey(), tags=(tag,)))
    assert (refused.rule, refused.detail["budget"]) == ("budget_exhausted", f"tag:{tag}")


async def test_transactional_sends_spend_the_budget_too(client: aioredis.Redis) -> None:
    caps, jid = service(client), journey()
    budget = Budget(max_sends=1)
    assert (await caps.reserve(request(jid, budget=budget, transactional=True))).allowed
    refused = await caps.reserve(request(jid, budget=budget, transactional=True))
    assert refused.rule == "budget_exhausted"


async def test_fifty_concurrent_journeys_never_overspend_one_shared_budget(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """50 journeys sharing a tag budget, each sending to 8 people at once, through 4 clients
    (as 4 workers would): exactly the budget is spent, never more."""
    tag = f"coupon{uuid.uuid4().hex[:6]}"
    policy = {
        "budgets": {tag: {"max_sends": 150, "max_value": 2900}},
        "caps": {"global": [{"max": 3, "per": "1d"}]},
    }
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(4)]
    workers = [service(c, **policy) for c in clients]
    people = [f"p-{uuid.uuid4().hex[:8]}" for _ in range(120)]
    sends = [
        request(f"j{j}-{tag}", profile_id=people[(j * 8 + n) % 120], tags=(tag,), value=j % 3 * 10)
        for j in range(50)
        for n in range(8)
    ]
    try:
        decisions = await asyncio.gather(
            *(workers[i % 4].reserve(send) for i, send in enumerate(sends))
        )
    finally:
        for c in clients:
            await c.aclose()
    allowed = [send for send, d in zip(sends, decisions, strict=True) if d.allowed]
    usage = await budget_usage(client, f"tag:{tag}")
    assert usage.sends == len(allowed) <= 150
    assert usage.value == sum(send.value for send in allowed) <= 2900
    assert {d.rule for d in decisions if not d.allowed} <= {"budget_exhausted", "global:3/1d"}
    assert any(d.rule == "budget_exhausted" for d in decisions)


async def test_a_restarted_redis_that_forgot_the_scripts_still_decides_once(
    client: aioredis.Redis,
) -> None:
    caps = service(client, caps={"global": [{"max": 5, "per": "1d"}]})
    jid = journey()
    await client.script_flush()  # as after a restart: the pipeline meets NOSCRIPT
    sent = request(jid, budget=Budget(max_sends=1))
    assert (await caps.reserve(sent)).allowed
    assert (await caps.reserve(sent)).allowed
    assert (await budget_usage(client, f"journey:{jid}")).sends == 1


@dataclass
class BudgetModel:
    """The rules as the README states them, one send at a time: caps (2 a day per person)
    first, then the budget; a refusal by either keeps nothing; the same key, the same answer,
    except that a key the budget refused (or that was released) is decided afresh."""

    max_sends: int
    max_value: int
    touches: dict[str, int] = field(default_factory=dict)
    records: dict[int, str] = field(default_factory=dict)
    sends: int = 0
    value: int = 0

    def reserve(self, key: int, person: str, value: int) -> str | None:
        record = self.records.get(key)
        if record == "a":
            return None
        if record == "r":
            return "global:2/1d"
        if self.touches.get(person, 0) >= 2:
            self.records[key] = "r"
            return "global:2/1d"
        if self.sends + 1 > self.max_sends or self.value + value > self.max_value:
            self.records[key] = "x"
            return "budget_exhausted"
        self.touches[person] = self.touches.get(person, 0) + 1
        self.sends, self.value = self.sends + 1, self.value + value
        self.records[key] = "a"
        return None

    def release(self, key: int, person: str, value: int) -> None:
        if self.records.get(key) == "a":
            self.touches[person] -= 1
            self.sends, self.value = self.sends - 1, self.value - value
            self.records[key] = "x"


operations = st.lists(
    st.tuples(st.sampled_from(["reserve", "release"]), st.integers(0, 9)), max_size=30
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    max_sends=st.integers(0, 6),
    max_value=st.integers(0, 80),
    values=st.lists(st.sampled_from([0, 10, 20, 30]), min_size=10, max_size=10),
    steps=operations,
)
async def test_budget_and_caps_decisions_match_the_model(
    client: aioredis.Redis,
    max_sends: int,
    max_value: int,
    values: list[int],
    steps: list[tuple[str, int]],
) -> None:
    caps = service(client, caps={"global": [{"max": 2, "per": "1d"}]})
    jid, run = journey(), uuid.uuid4().hex[:6]
    budget = Budget(max_sends=max_sends, max_value=max_value)
    model = BudgetModel(max_sends, max_value)
    people = [f"p-{run}-{i}" for i in range(3)]
    for action, key in steps:
        person, value = people[key % 3], values[key]
        if action == "reserve":
            sent = request(
                jid, send_key=f"{run}:{key}", profile_id=person, budget=budget, value=value
            )
            decision = await caps.reserve(sent)
            assert decision.rule == model.reserve(key, person, value)
        else:
            await caps.release(f"{run}:{key}", person, budget_scopes(jid, ()))
            model.release(key, person, value)
        usage = await budget_usage(client, f"journey:{jid}")
        assert (usage.sends, usage.value) == (model.sends, model.value)
