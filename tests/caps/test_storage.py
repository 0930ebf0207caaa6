"""What the cap service leaves in Redis: counters expire and stay trimmed, and reservation
records written by the JSON version of the script before still answer (an upgrade in place)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from engine.caps.checker import CapRequest
from engine.caps.redis_caps import REFRESH, STRAGGLE, RedisCapService, person_key
from engine.dsl.policy import Policy
from tests.caps.model import to_ms
from tests.harness import RedisServer

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = Policy.model_validate(
    {
        "caps": {
            "global": [{"max": 3, "per": "1d"}],
            "channels": {"sms": [{"max": 1, "per": "7d"}], "push": [{"max": 5, "per": "1d"}]},
        },
        "on_capped": {"action": "skip"},
    }
)
KEEP = timedelta(days=7) + STRAGGLE  # an sms: the longest window and the straggle
PUSH_KEEP = DAY + STRAGGLE


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def request(person: str, at: datetime, key: str | None = None, channel: str = "sms") -> CapRequest:
    return CapRequest(
        send_key=key or uuid.uuid4().hex,
        profile_id=person,
        journey_id="j",
        channel=channel,
        priority=50,
        at=at,
        timezone="UTC",
    )


async def ttl(client: aioredis.Redis, person: str, name: str) -> timedelta:
    return timedelta(milliseconds=await client.pttl(person_key(person, name)))


async def test_counters_live_past_the_longest_window_after_every_reservation(
    client: aioredis.Redis,
) -> None:
    caps, person = RedisCapService(client, POLICY), f"s-{uuid.uuid4().hex[:8]}"
    first = request(person, T0)
    assert (await caps.reserve(first)).allowed
    for name in ("g", "c:sms"):
        assert KEEP < await ttl(client, person, name) <= KEEP + REFRESH

    # A release empties the channel counter (Redis deletes it); the next reservation makes it
    # again, and it gets its expiry again even though it was refreshed a moment ago.
    await caps.release(first.send_key, person)
    assert await client.exists(person_key(person, "c:sms")) == 0
    assert (await caps.reserve(request(person, T0 + timedelta(hours=1)))).allowed
    assert KEEP < await ttl(client, person, "c:sms") <= KEEP + REFRESH

    # Another channel's counter, first used after the refresh, is refreshed too.
    assert (await caps.reserve(request(person, T0 + timedelta(hours=2), channel="push"))).allowed
    assert PUSH_KEEP < await ttl(client, person, "c:push") <= PUSH_KEEP + REFRESH


async def test_a_counter_is_trimmed_when_its_refresh_is_due(client: aioredis.Redis) -> None:
    caps, person = RedisCapService(client, POLICY), f"s-{uuid.uuid4().hex[:8]}"
    for day in range(40):
        assert (await caps.reserve(request(person, T0 + day * DAY, channel="push"))).allowed
    # Within a refresh period (a day of wall clock, here the whole test) nothing is trimmed.
    assert await client.zcard(person_key(person, "g")) == 40

    await client.delete(person_key(person, "refreshed"))  # a day of wall clock has passed
    at = T0 + 40 * DAY
    assert (await caps.reserve(request(person, at, channel="push"))).allowed
    kept = await client.zrange(person_key(person, "g"), 0, -1, withscores=True)
    # What is left: the reservations within the longest window and the straggle.
    assert [int(score) for _, score in kept] == [
        to_ms(T0 + day * DAY) for day in range(40 + 1) if T0 + day * DAY >= at - PUSH_KEEP
    ]


async def test_records_of_the_json_script_still_answer_and_release(
    client: aioredis.Redis,
) -> None:
    """Records written before the upgrade live as long as the counters: a retry of such a send
    gets its first answer, and a release of an allowed one frees its slot."""
    caps, person = RedisCapService(client, POLICY), f"s-{uuid.uuid4().hex[:8]}"
    allowed_key, refused_key = "old-allowed", "old-refused"
    counters = [person_key(person, "g"), person_key(person, "c:sms")]
    for counter in counters:
        await client.zadd(counter, {allowed_key: to_ms(T0)})
    records = {
        allowed_key: {"s": "allowed", "keys": counters},
        refused_key: {"s": "refused", "rule": 2, "count": 1, "blocking": to_ms(T0)},
    }
    for key, record in records.items():
        await client.set(person_key(person, f"r:{key}"), json.dumps(record))

    later = T0 + timedelta(hours=1)
    assert (await caps.reserve(request(person, later, key=allowed_key))).allowed
    assert await client.zcard(counters[1]) == 1  # not counted twice
    refused = await caps.reserve(request(person, later, key=refused_key))
    assert (refused.allowed, refused.rule, refused.detail["count"]) == (
        False,
        "channel:sms:1/1w",
        "1",
    )
    assert refused.retry_at == T0 + timedelta(days=7)
    assert not (await caps.reserve(request(person, later))).allowed  # sms is still taken

    await caps.release(allowed_key, person)
    assert await client.zcard(counters[0]) == 0
    assert (await caps.reserve(request(person, later))).allowed  # the slot is free again
    # The released old record is decided afresh: sms is taken again now, so refused.
    assert not (await caps.reserve(request(person, later, key=allowed_key))).allowed


async def test_the_counter_index_lists_every_counter_and_outlives_them(
    client: aioredis.Redis,
) -> None:
    caps, person = RedisCapService(client, POLICY), f"s-{uuid.uuid4().hex[:8]}"
    assert (await caps.reserve(request(person, T0))).allowed  # sms: kept for a week and more
    await client.delete(person_key(person, "refreshed"))  # a day of wall clock has passed
    later = T0 + timedelta(hours=2)
    assert (await caps.reserve(request(person, later, channel="push"))).allowed  # kept 8 days
    names = {name.decode() for name in await client.smembers(person_key(person, "idx"))}
    assert names == {"g", "c:sms", "c:push"}
    # The index's TTL is read first: read after the counters it would have lost the
    # milliseconds between the reads.
    index = await ttl(client, person, "idx")
    longest = max([await ttl(client, person, name) for name in names])
    assert index >= longest
