"""A send given up after a day of retries: logged failed, its cap reservation given back, unless
a late attempt got through (real Redis, SQLite, the activity in Temporal's activity environment).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from temporalio.testing import ActivityEnvironment

from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.caps.budgets import budget_usage
from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.domain import Delivery
from engine.dsl.models import Budget
from engine.dsl.policy import Policy
from engine.store import Store
from engine.workflow.messages import GiveUpInput, SendInput
from tests.harness import RedisServer, sqlite_store

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ONE_A_DAY = Policy.model_validate({"caps": {"global": [{"max": 1, "per": "1d"}]}})


@pytest.fixture
async def parts(
    redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[JourneyActivities, RedisCapService, Store]]:
    client = aioredis.Redis.from_url(redis_server.url)
    caps = RedisCapService(client, ONE_A_DAY)
    store = await sqlite_store(tmp_path)
    async with httpx.AsyncClient() as http:
        registry = ConnectorRegistry.from_settings(ConnectorSettings(), http)
        yield JourneyActivities(store, caps, registry), caps, store
    await store.aclose()
    await client.aclose()


def send(name: str) -> SendInput:
    return SendInput(
        send_key=f"{uuid.uuid4().hex}:crm:1",
        journey_id="cart",
        version=1,
        # Redis outlives the test (other tests' people share it): a fresh person.
        profile_id=f"{name}-{uuid.uuid4().hex[:6]}",
        step_id="crm",
        channel="sms",
        template="t",
        category="marketing",
        priority=50,
        at=AT,
        timezone="Asia/Shanghai",
    )


def touch(item: SendInput, send_key: str | None = None) -> CapRequest:
    return CapRequest(
        send_key=send_key or item.send_key,
        profile_id=item.profile_id,
        journey_id=item.journey_id,
        channel=item.channel,
        priority=item.priority,
        at=item.at,
        timezone=item.timezone,
    )


async def test_a_given_up_send_is_failed_and_frees_its_touch(
    parts: tuple[JourneyActivities, RedisCapService, Store],
) -> None:
    activities, caps, store = parts
    stuck = send("p1")
    assert (await caps.reserve(touch(stuck))).allowed  # reserved, then the provider stayed down

    result = await ActivityEnvironment().run(
        activities.give_up_send, GiveUpInput(send=stuck, reason="retries_exhausted:X")
    )

    assert (result.status, result.reason) == ("failed", "retries_exhausted:X")
    stored = await store.get_delivery(stuck.send_key)
    assert stored is not None and stored.status == "failed"
    # The day's one touch is free again for another journey.
    assert (await caps.reserve(touch(stuck, send_key="another-journey"))).allowed


async def test_a_send_that_got_through_late_stays_sent_and_counted(
    parts: tuple[JourneyActivities, RedisCapService, Store],
) -> None:
    activities, caps, store = parts
    late = send("p2")
    assert (await caps.reserve(touch(late))).allowed
    await store.record_delivery(
        Delivery(
            late.send_key, "cart", 1, late.profile_id, "crm", "sms", "t", "marketing", "sent", AT
        )
    )

    result = await ActivityEnvironment().run(
        activities.give_up_send, GiveUpInput(send=late, reason="retries_exhausted:X")
    )

    assert result.status == "sent"
    assert not (await caps.reserve(touch(late, send_key="another-journey"))).allowed


async def test_a_send_whose_attempt_reached_the_provider_is_unknown_and_stays_counted(
    parts: tuple[JourneyActivities, RedisCapService, Store],
) -> None:
    activities, caps, store = parts
    lost = send("p3")
    assert (await caps.reserve(touch(lost))).allowed
    # An at-most-once attempt was on record, then the store stayed down until the deadline.
    await store.record_delivery(
        Delivery(
            lost.send_key,
            "cart",
            1,
            lost.profile_id,
            "crm",
            "sms",
            "t",
            "marketing",
            "attempting",
            AT,
        )
    )

    result = await ActivityEnvironment().run(
        activities.give_up_send, GiveUpInput(send=lost, reason="retries_exhausted:X")
    )

    assert (result.status, result.reason) == ("unknown", "interrupted")
    stored = await store.get_delivery(lost.send_key)
    assert stored is not None and stored.status == "unknown"
    # It may have reached the person: the touch stays counted.
    assert not (await caps.reserve(touch(lost, send_key="another-journey"))).allowed


async def test_a_given_up_send_gives_its_budget_share_back_an_unknown_one_keeps_it(
    parts: tuple[JourneyActivities, RedisCapService, Store],
    redis_server: RedisServer,
) -> None:
    activities, caps, store = parts
    journey = f"cart-{uuid.uuid4().hex[:6]}"
    budget = Budget(max_sends=5, max_value=100)
    stuck = send("p4").model_copy(update={"journey_id": journey})
    lost = send("p5").model_copy(update={"journey_id": journey})
    for item in (stuck, lost):
        reserved = replace(touch(item), journey_id=journey, budget=budget, value=20)
        assert (await caps.reserve(reserved)).allowed
    await store.record_delivery(
        Delivery(
            lost.send_key,
            journey,
            1,
            lost.profile_id,
            "crm",
            "sms",
            "t",
            "marketing",
            "attempting",
            AT,
        )
    )
    for item in (stuck, lost):
        await ActivityEnvironment().run(
            activities.give_up_send, GiveUpInput(send=item, reason="retries_exhausted:X")
        )

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        usage = await budget_usage(client, f"journey:{journey}")
    finally:
        await client.aclose()
    # The failed send's share is back; the unknown one may have reached the person: kept.
    assert (usage.sends, usage.value) == (1, 20)
