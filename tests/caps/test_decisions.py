"""Decisions of the Redis cap service that a person would notice, on a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from engine.caps.checker import CapRequest, CapStoreUnavailable
from engine.caps.redis_caps import RedisCapService
from engine.dsl.policy import Policy
from tests.harness import RedisServer

SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT = datetime(2026, 11, 24, 23, 30, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def service(client: aioredis.Redis, **policy: Any) -> RedisCapService:
    return RedisCapService(client, Policy.model_validate(policy))


def request(profile: str, at: datetime, **fields: Any) -> CapRequest:
    base: dict[str, Any] = {
        "send_key": uuid.uuid4().hex,
        "profile_id": profile,
        "journey_id": "j",
        "channel": "sms",
        "priority": 50,
        "at": at,
        "timezone": "Asia/Shanghai",
    }
    return CapRequest(**{**base, **fields})


def someone() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


QUIET = {"quiet_hours": {"from": "21:00", "to": "09:00", "action": "defer"}}


async def test_quiet_hours_defer_to_nine_in_the_persons_own_timezone(
    client: aioredis.Redis,
) -> None:
    caps = service(client, **QUIET)
    shanghai = await caps.reserve(request(someone(), NIGHT))
    assert (shanghai.action, shanghai.rule) == ("defer", "quiet_hours")
    assert shanghai.retry_at == datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI)

    # 23:30 in Shanghai is 10:30 in New York: not quiet there.
    new_york = await caps.reserve(request(someone(), NIGHT, timezone="America/New_York"))
    assert new_york.allowed


async def test_quiet_hours_drop_sends_nothing(client: aioredis.Redis) -> None:
    caps = service(client, quiet_hours={"from": "21:00", "to": "09:00", "action": "drop"})
    decision = await caps.reserve(request(someone(), NIGHT))
    assert (decision.allowed, decision.action, decision.rule) == (False, "skip", "quiet_hours")


async def test_the_highest_priority_wins_the_arbitration_window(client: aioredis.Redis) -> None:
    caps = service(client, arbitration={"window": "10m"})
    person = someone()
    t0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    claims = {
        priority: request(
            person, t0 + timedelta(minutes=i), journey_id=f"j{priority}", priority=priority
        )
        for i, priority in enumerate((10, 50, 90))
    }
    for claim in claims.values():
        first = await caps.reserve(claim)
        assert (first.action, first.retry_at) == ("arbitrate", t0 + timedelta(minutes=10))

    after = t0 + timedelta(minutes=10)
    outcomes = {
        p: await caps.reserve(CapRequest(**{**c.__dict__, "at": after})) for p, c in claims.items()
    }
    assert outcomes[90].allowed
    for loser in (10, 50):
        assert (outcomes[loser].action, outcomes[loser].rule) == ("skip", "arbitration_lost:j90")

    # A claim after the window closed opens a new window instead of joining the decided one.
    late = await caps.reserve(request(person, after + timedelta(seconds=1), journey_id="late"))
    assert late.action == "arbitrate" and late.retry_at == after + timedelta(minutes=10, seconds=1)


async def test_a_retried_send_key_gets_the_same_answer_and_counts_once(
    client: aioredis.Redis,
) -> None:
    caps = service(client, caps={"global": [{"max": 2, "per": "1d"}]})
    person, t0 = someone(), datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    first = request(person, t0)
    assert (await caps.reserve(first)).allowed
    assert (await caps.reserve(first)).allowed  # the activity retried: not a second touch
    assert (await caps.reserve(request(person, t0))).allowed
    third = await caps.reserve(request(person, t0 + timedelta(hours=1)))
    assert (third.action, third.rule, third.detail["count"]) == ("defer", "global:2/1d", "2")
    assert third.retry_at == t0 + timedelta(days=1)


async def test_a_released_reservation_frees_the_slot(client: aioredis.Redis) -> None:
    caps = service(client, caps={"channels": {"sms": [{"max": 1, "per": "7d"}]}})
    person, t0 = someone(), datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    failed = request(person, t0)
    assert (await caps.reserve(failed)).allowed
    assert not (await caps.reserve(request(person, t0))).allowed
    await caps.release(failed.send_key, person)
    assert (await caps.reserve(request(person, t0))).allowed
    assert (await caps.reserve(request(person, t0, channel="email"))).allowed  # other channel


async def test_transactional_messages_are_exempt(client: aioredis.Redis) -> None:
    caps = service(client, caps={"global": [{"max": 1, "per": "1d"}]}, **QUIET)
    person = someone()
    assert (await caps.reserve(request(person, NIGHT, transactional=True))).allowed
    assert (await caps.reserve(request(person, NIGHT, transactional=True))).allowed


async def test_what_a_refusal_does_follows_the_policy_and_the_step(client: aioredis.Redis) -> None:
    person, t0 = someone(), datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    week = {"journey_caps": ()}
    strict = {"caps": {"global": [{"max": 1, "per": "7d"}]}}
    defer = service(client, **strict, on_capped={"action": "defer", "expire_after": "2d"})
    assert (await defer.reserve(request(person, t0, **week))).allowed
    expired = await defer.reserve(request(person, t0, **week))
    assert (expired.action, expired.retry_at) == ("expire", t0 + timedelta(days=7))
    skipped = await defer.reserve(request(person, t0, defer_allowed=False))
    assert skipped.action == "skip"
    leave = service(client, **strict, on_capped={"action": "exit"})
    assert (await leave.reserve(request(person, t0))).action == "exit"


async def test_calendar_windows_free_at_the_persons_midnight(client: aioredis.Redis) -> None:
    caps = service(client, window="calendar", caps={"global": [{"max": 1, "per": "1d"}]})
    person = someone()
    evening = datetime(2026, 11, 24, 20, 0, tzinfo=SHANGHAI)
    assert (await caps.reserve(request(person, evening))).allowed
    refused = await caps.reserve(request(person, evening + timedelta(hours=1)))
    assert refused.retry_at == datetime(2026, 11, 25, 0, 0, tzinfo=SHANGHAI)
    assert (await caps.reserve(request(person, evening + timedelta(hours=4, minutes=1)))).allowed


async def test_an_unreachable_redis_fails_closed(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # never started: nothing listens on its port
    connection = aioredis.Redis.from_url(server.url, socket_connect_timeout=1)
    with pytest.raises(CapStoreUnavailable):
        await service(connection, caps={"global": [{"max": 1, "per": "1d"}]}).reserve(
            request(someone(), NIGHT)
        )
    await connection.aclose()


async def test_a_released_send_key_is_decided_afresh(client: aioredis.Redis) -> None:
    caps = service(client, caps={"global": [{"max": 1, "per": "1d"}]})
    person, t0 = someone(), datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    failed = request(person, t0)
    assert (await caps.reserve(failed)).allowed
    await caps.release(failed.send_key, person)
    assert (await caps.reserve(request(person, t0))).allowed  # takes the freed slot
    # The failed send's activity retried after the release: checked again, and refused.
    assert not (await caps.reserve(failed)).allowed


def test_calendar_windows_must_be_whole_days() -> None:
    with pytest.raises(ValueError, match="2d12h is not a whole number of days"):
        Policy.model_validate(
            {"window": "calendar", "caps": {"global": [{"max": 1, "per": "60h"}]}}
        )


async def test_a_deferral_retried_just_past_its_expiry_is_sent_unless_a_pause_held_it(
    client: aioredis.Redis,
) -> None:
    # A deferral's retry lands a little after the slot it waited for (the arbitration window,
    # a busy worker): on time. Only a send an operator's pause held past the expiry is stale.
    caps = service(client, on_capped={"action": "defer", "expire_after": "1d"})
    first = datetime(2026, 11, 24, 3, tzinfo=UTC)
    late = first + timedelta(days=1, minutes=10)
    retried = await caps.reserve(request(someone(), late, first_attempt_at=first))
    assert retried.allowed
    held = await caps.reserve(request(someone(), late, first_attempt_at=first, held=True))
    assert (held.allowed, held.action, held.rule) == (False, "expire", "held_past_expiry")
