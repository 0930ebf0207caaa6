"""OneID merges: every touch of a person counts against the survivor, whichever id it was made
under, before or after the merge (real redis-server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService, person_key
from engine.dsl.models import Cap
from engine.dsl.policy import Policy
from tests.harness import RedisServer

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ONE_A_DAY = {"caps": {"global": [{"max": 1, "per": "1d"}]}, "on_capped": {"action": "skip"}}


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def service(client: aioredis.Redis, **policy: Any) -> RedisCapService:
    return RedisCapService(client, Policy.model_validate(policy or ONE_A_DAY))


def ids() -> tuple[str, str]:
    """A merged id and its survivor, fresh for each test."""
    tag = uuid.uuid4().hex[:8]
    return f"shop-{tag}", f"app-{tag}"


def ask(key: str, profile: str, at: datetime = T0, **extra: Any) -> CapRequest:
    return CapRequest(
        send_key=key,
        profile_id=profile,
        journey_id=extra.pop("journey_id", "winback"),
        channel="sms",
        priority=extra.pop("priority", 50),
        at=at,
        timezone="Asia/Shanghai",
        **extra,
    )


async def test_a_touch_under_the_merged_id_counts_for_the_survivor(
    client: aioredis.Redis,
) -> None:
    caps = service(client)
    shop, app = ids()
    assert (await caps.reserve(ask("s1", shop))).allowed  # before the merge, as shop
    later = T0 + timedelta(hours=2)
    decision = await caps.reserve(ask("a1", app, later, merged_ids=(shop,)))
    assert (decision.allowed, decision.rule) == (False, "global:1/1d")
    # Another worker (its own process memory) sees the same: the fold is in Redis.
    again = await service(client).reserve(ask("a2", app, later, merged_ids=(shop,)))
    assert (again.allowed, again.rule) == (False, "global:1/1d")


async def test_a_late_reservation_under_the_old_id_lands_on_the_survivor(
    client: aioredis.Redis,
) -> None:
    caps = service(client)
    shop, app = ids()
    assert (await caps.reserve(ask("a1", app, merged_ids=(shop,)))).allowed
    # A worker that read the store just before the merge still asks as shop: it is refused by
    # the survivor's counters, and nothing is counted under shop.
    stale = await service(client).reserve(ask("s1", shop, T0 + timedelta(minutes=1)))
    assert (stale.allowed, stale.rule) == (False, "global:1/1d")
    assert await client.exists(person_key(shop, "g")) == 0
    tomorrow = T0 + timedelta(days=1, minutes=1)
    assert (await service(client).reserve(ask("s2", shop, tomorrow))).allowed
    assert await client.zcard(person_key(app, "g")) == 2
    assert await client.exists(person_key(shop, "g")) == 0


async def test_a_retried_send_keeps_its_reservation_across_the_merge(
    client: aioredis.Redis,
) -> None:
    caps = service(client)
    shop, app = ids()
    assert (await caps.reserve(ask("s1", shop))).allowed
    # The activity failed after reserving; its retry comes after the merge, as the survivor.
    retry = await service(client).reserve(
        ask("s1", app, T0 + timedelta(minutes=5), merged_ids=(shop,))
    )
    assert retry.allowed
    assert await client.zcard(person_key(app, "g")) == 1


async def test_a_release_after_the_merge_gives_the_touch_back_to_the_survivor(
    client: aioredis.Redis,
) -> None:
    caps = service(client)
    shop, app = ids()
    assert (await caps.reserve(ask("s1", shop))).allowed
    refused = await caps.reserve(ask("a1", app, merged_ids=(shop,)))
    assert not refused.allowed
    await service(client).release("s1", shop)  # the give-up path names the run's own id
    assert await client.zcard(person_key(app, "g")) == 0
    # Folding again (another worker, a retried send) does not bring the touch back.
    fresh = service(client)
    assert (await fresh.reserve(ask("a2", app, merged_ids=(shop,)))).allowed
    assert await client.zcard(person_key(app, "g")) == 1


async def test_a_fold_cut_short_after_the_forward_is_finished_by_the_next_send(
    client: aioredis.Redis,
) -> None:
    caps = service(client)
    shop, app = ids()
    assert (await caps.reserve(ask("s1", shop))).allowed
    # A worker died between the two halves: the forward is set, nothing was copied.
    await caps._forward(
        keys=[person_key(shop, "merged"), person_key(shop, "idx"), person_key(shop, "refreshed")],
        args=[app, 60_000],
    )
    decision = await service(client).reserve(ask("a1", app, merged_ids=(shop,)))
    assert (decision.allowed, decision.rule) == (False, "global:1/1d")


async def test_journey_and_channel_counters_are_folded_too(client: aioredis.Redis) -> None:
    policy = {"caps": {"channels": {"sms": [{"max": 1, "per": "7d"}]}}}
    caps = service(client, **policy)
    shop, app = ids()
    monthly = (Cap(max=1, per=timedelta(days=30)),)
    assert (await caps.reserve(ask("s1", shop, journey_id="vip", journey_caps=monthly))).allowed
    week = await service(client, **policy).reserve(
        ask("a1", app, T0 + timedelta(days=1), merged_ids=(shop,))
    )
    assert (week.allowed, week.rule) == (False, "channel:sms:1/1w")
    later = T0 + timedelta(days=8)  # the channel's week has passed; the journey's month not
    month = await service(client, **policy).reserve(
        ask("a2", app, later, journey_id="vip", journey_caps=monthly, merged_ids=(shop,))
    )
    assert (month.allowed, month.rule) == (False, "journey:vip:1/4w2d")


async def test_arbitration_claims_of_both_ids_compete_in_one_window(
    client: aioredis.Redis,
) -> None:
    policy = {**ONE_A_DAY, "arbitration": {"window": "10m"}}
    caps = service(client, **policy)
    shop, app = ids()
    # Before the merge each id opened its own window with one claim.
    low = ask("s1", shop, priority=10, journey_id="newsletter")
    high = ask("a1", app, T0 + timedelta(minutes=3), priority=90, journey_id="vip")
    assert (await caps.reserve(low)).action == "arbitrate"
    assert (await caps.reserve(high)).action == "arbitrate"
    # Merged: shop's run asks again when its window ends; it now waits for the later end.
    at_shop_end = T0 + timedelta(minutes=10)
    merged_low = replace(low, profile_id=app, at=at_shop_end, merged_ids=(shop,))
    waiting = await service(client, **policy).reserve(merged_low)
    assert (waiting.action, waiting.retry_at) == ("arbitrate", T0 + timedelta(minutes=13))
    end = T0 + timedelta(minutes=13)
    won = await caps.reserve(replace(high, at=end, merged_ids=(shop,)))
    lost = await caps.reserve(replace(merged_low, at=end))
    assert won.allowed
    assert (lost.allowed, lost.rule) == (False, "arbitration_lost:vip")


async def test_a_person_merged_twice_ends_up_with_every_touch(client: aioredis.Redis) -> None:
    policy = {"caps": {"global": [{"max": 2, "per": "1d"}]}, "on_capped": {"action": "skip"}}
    shop, app = ids()
    crm = f"crm-{uuid.uuid4().hex[:8]}"
    assert (await service(client, **policy).reserve(ask("s1", shop))).allowed
    # shop was merged into app, then app into crm; a worker that knows both asks as crm.
    assert (await service(client, **policy).reserve(ask("c1", crm, merged_ids=(app,)))).allowed
    # One that read the store between the two merges still asks as app, folding shop: shop's
    # touch must reach crm, not the app keys that were already folded away.
    stale = await service(client, **policy).reserve(ask("a1", app, merged_ids=(shop,)))
    assert (stale.allowed, stale.rule) == (False, "global:2/1d")
    assert await client.zcard(person_key(crm, "g")) == 2


@pytest.mark.parametrize("round_", range(5))
async def test_racing_the_fold_from_both_ids_never_exceeds_the_cap(
    client: aioredis.Redis, round_: int
) -> None:
    policy = {"caps": {"global": [{"max": 3, "per": "1d"}]}, "on_capped": {"action": "skip"}}
    shop, app = ids()
    for n in range(2):
        assert (await service(client, **policy).reserve(ask(f"s{n}", shop))).allowed
    # Ten workers that know the merge ask as app; ten that read the store just before it
    # still ask as shop. Each has its own memory of folds, as separate processes do.
    later = T0 + timedelta(hours=1)
    asks = [ask(f"a{n}", app, later, merged_ids=(shop,)) for n in range(10)]
    asks += [ask(f"late{n}", shop, later) for n in range(10)]
    asks = asks[round_:] + asks[:round_]
    decisions = await asyncio.gather(*(service(client, **policy).reserve(a) for a in asks))
    assert sum(d.allowed for d in decisions) == 1
    assert await client.zcard(person_key(app, "g")) == 3
